import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who a sandboxed child is: a user namespace of its own when it was not started by root,
/// another user and group when it was, and in both cases no capability and no way to gain one.
enum SandboxCredentials {
    /// The namespace flags of `unshare` (sched.h), spelled out: Glibc's module hides them
    /// without `_GNU_SOURCE`.
    enum Namespace {
        static let mount: Int32 = 0x0002_0000
        static let cgroup: Int32 = 0x0200_0000
        static let uts: Int32 = 0x0400_0000
        static let ipc: Int32 = 0x0800_0000
        static let user: Int32 = 0x1000_0000
        static let pid: Int32 = 0x2000_0000
        static let network: Int32 = 0x4000_0000
    }

    /// Whether this process can make namespaces and cgroups without a user namespace: root
    /// with `CAP_SYS_ADMIN`.
    static var isPrivileged: Bool { geteuid() == 0 && mp_sb_has_admin_capability() == 1 }

    /// Enters a new user namespace (unless privileged) together with `namespaces`, mapping this
    /// process's user and group to themselves. Each namespace that fails is reported (required:
    /// thrown) under its own restriction.
    ///
    /// With `deferringNetwork`, the network namespace is left for later (``SandboxSupervisor``
    /// makes it after the fork, while the init builds its view).
    static func unshare(
        _ sandbox: Sandbox, privileged: Bool, deferringNetwork: Bool = false, progress: inout SandboxProgress
    ) throws(SandboxError) {
        var wanted: [(Int32, SandboxRestriction)] = []
        if sandbox.isolatesProcesses { wanted.append((Namespace.pid, .processes)) }
        if sandbox.network == .none && !deferringNetwork { wanted.append((Namespace.network, .network)) }
        if sandbox.isolatesIPC { wanted.append((Namespace.ipc, .ipc)) }
        if sandbox.hostname != nil { wanted.append((Namespace.uts, .hostname)) }
        let needsUserNamespace =
            !privileged && (!wanted.isEmpty || sandbox.isolatesFileSystem || sandbox.network == .none)
        let uid = getuid()
        let gid = getgid()
        if needsUserNamespace {
            try progress.apply(.userNamespace) {
                if let failure = SandboxProgress.failure(
                    "unshare(CLONE_NEWUSER)", mp_sb_unshare(Namespace.user))
                {
                    return failure
                }
                guard SandboxCgroups.writeFile("deny", to: "/proc/self/setgroups"),
                    SandboxCgroups.writeFile("\(uid) \(uid) 1", to: "/proc/self/uid_map"),
                    SandboxCgroups.writeFile("\(gid) \(gid) 1", to: "/proc/self/gid_map")
                else { return SandboxProgress.reason("writing the user namespace's maps", errno) }
                return nil
            }
        }
        let all = wanted.reduce(Int32(0)) { $0 | $1.0 }
        if all != 0 && mp_sb_unshare(all) == 0 {
            for (_, restriction) in wanted { try progress.apply(restriction) { nil } }
            return
        }
        // One by one, to name the one that fails.
        for (flag, restriction) in wanted {
            try progress.apply(restriction) {
                SandboxProgress.failure("unshare", mp_sb_unshare(flag))
            }
        }
    }

    /// Drops every capability for good, switching to ``Sandbox/user`` first when privileged.
    static func drop(_ sandbox: Sandbox, privileged: Bool, progress: inout SandboxProgress)
        throws(SandboxError)
    {
        let lastCapability = Int32(
            SandboxCgroups.readText("/proc/sys/kernel/cap_last_cap")?.split(separator: "\n").first
                .flatMap { Int32($0) } ?? 40)
        // Locked first (it needs CAP_SETPCAP, as does emptying the bounding set).
        let lock = mp_sb_lock_securebits()
        let bounding = mp_sb_drop_bounding_set(lastCapability)
        if privileged {
            let user = sandbox.user
            try progress.apply(.user) {
                var groups = [gid_t(user.gid)]
                if setgroups(1, &groups) != 0 { return SandboxProgress.reason("setgroups", errno) }
                return SandboxProgress.failure("setresuid", mp_sb_set_ids(user.uid, user.gid))
            }
            progress.report.userID = getuid()
            progress.report.groupID = getgid()
        }
        try progress.apply(.capabilities) {
            if let failure = SandboxProgress.failure("PR_SET_SECUREBITS", lock) { return failure }
            if let failure = SandboxProgress.failure("PR_CAPBSET_DROP", bounding) { return failure }
            if let failure = SandboxProgress.failure("capset", mp_sb_clear_capabilities()) { return failure }
            return mp_sb_capabilities_empty() == 1 ? nil : "capabilities remain after capset"
        }
        try progress.apply(.noNewPrivileges) {
            SandboxProgress.failure("PR_SET_NO_NEW_PRIVS", mp_sb_prctl(38, 1, 0, 0, 0))
        }
    }
}
