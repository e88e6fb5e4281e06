import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Landlock as a second layer under the mount namespace: the same allow-lists, enforced by the
/// kernel's security module on every open whatever the mounts say, plus (ABI 6) no signal to and
/// no abstract socket of a process outside the sandbox.
enum SandboxLandlock {
    private static let execute: UInt64 = 1 << 0, writeFile: UInt64 = 1 << 1, readFile: UInt64 = 1 << 2
    private static let readDirectory: UInt64 = 1 << 3, truncate: UInt64 = 1 << 14,
        ioctlDevice: UInt64 = 1 << 15

    /// Every file-system right the kernel's ABI knows.
    private static func handled(abi: Int) -> UInt64 {
        var rights: UInt64 = (1 << 13) - 1  // ABI 1: EXECUTE ... MAKE_SYM.
        if abi >= 2 { rights |= 1 << 13 }  // REFER
        if abi >= 3 { rights |= truncate }
        if abi >= 5 { rights |= ioctlDevice }
        return rights
    }

    /// Applies the rules; `nil` on success (`abi` set), else why not.
    static func apply(_ sandbox: Sandbox, visible: [SandboxMounts.Visible], ownView: Bool, abi: inout Int?)
        -> String?
    {
        let version = Int(mp_sb_landlock_abi())
        guard version > 0 else { return SandboxProgress.failure("landlock_create_ruleset", Int32(version)) }
        let all = handled(abi: version)
        let fileRights =
            execute | writeFile | readFile | (version >= 3 ? truncate : 0) | (version >= 5 ? ioctlDevice : 0)
        let scoped: UInt64 = version >= 6 ? (1 | 2) : 0  // ABSTRACT_UNIX_SOCKET | SIGNAL
        let ruleset = mp_sb_landlock_create(all, 0, scoped, Int32(version))
        guard ruleset >= 0 else { return SandboxProgress.failure("landlock_create_ruleset", ruleset) }
        defer { close(ruleset) }
        var rules: [(String, UInt64)] = []
        for entry in visible {
            let read = entry.isDirectory ? execute | readFile | readDirectory : execute | readFile
            let write = entry.isDirectory ? all : fileRights
            rules.append((entry.path, entry.writable ? write : read))
        }
        let devices = readFile | writeFile | (version >= 5 ? ioctlDevice : 0)
        if ownView {
            rules.append(("/", readDirectory))
            rules.append(("/dev", devices | readDirectory))
        } else {
            for name in ["null", "zero", "full", "random", "urandom", "tty"] {
                rules.append(("/dev/" + name, devices))
            }
        }
        rules.append(("/proc", readFile | readDirectory))
        for (path, access) in rules {
            let rc = mp_sb_landlock_allow_path(ruleset, path, access & all)
            // A path that does not exist here needs no rule (a device this machine lacks).
            if rc < 0 && rc != -ENOENT { return SandboxProgress.failure("landlock_add_rule '\(path)'", rc) }
        }
        if let failure = SandboxProgress.failure("landlock_restrict_self", mp_sb_landlock_restrict(ruleset)) {
            return failure
        }
        abi = version
        return nil
    }
}
