/// The seccomp filter of a ``Sandbox``.
///
/// It always denies what confined code never needs: `ptrace` and the `process_vm_*` calls,
/// every mount call, `chroot`, `unshare`, `setns` and `clone` with namespace flags, `kexec_*`,
/// `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`, `keyctl` and the key calls, module
/// loading, `reboot`, `swapon`/`swapoff`, `syslog`, `acct`, the clock setters, `sethostname`,
/// `open_by_handle_at`, `pidfd_getfd`, `iopl`/`ioperm`/`modify_ldt` (``deniedByDefault``).
/// `clone3` fails with `ENOSYS` (its flags cannot be inspected), so the C library falls back
/// to `clone`. Calls from another architecture's ABI end the child.
///
/// A denied call ends the child (every process in its sandbox) with
/// ``SandboxVerdict/systemCallDenied(name:)`` naming the call: the sandbox's init receives it
/// (`SECCOMP_RET_USER_NOTIF`) before it runs, so even an external program with its own
/// signal handlers cannot hide it.
public struct SystemCallFilter: Sendable, Hashable, Codable {
    /// Whether `socket` and `socketpair` are allowed. `false`: the only sockets the child has
    /// are those it was given (its channel, channel ends, queues); the calls fail with
    /// `EACCES` rather than end the child, because libraries try them and cope (Dispatch
    /// reports a refused priority change through syslog's socket).
    public var allowsNewSockets: Bool
    /// Whether `execve` and `execveat` are allowed. `false`: the child cannot start another
    /// program (a program run with ``Sandbox/run(_:arguments:environment:workingDirectory:input:timeLimit:outputLimit:startMethod:)``
    /// still starts itself, once).
    public var allowsExec: Bool
    /// More calls to deny, by name (from ``knownNames``; another name is refused at start with
    /// ``SandboxError/invalidConfiguration(_:)``).
    public var additionalDenials: [String]

    /// A filter.
    public init(allowsNewSockets: Bool = true, allowsExec: Bool = true, additionalDenials: [String] = []) {
        self.allowsNewSockets = allowsNewSockets
        self.allowsExec = allowsExec
        self.additionalDenials = additionalDenials
    }

    /// The default denials only: sockets and exec allowed.
    public static var standard: SystemCallFilter { SystemCallFilter() }

    /// The default denials, no new sockets and no exec.
    public static var strict: SystemCallFilter {
        SystemCallFilter(allowsNewSockets: false, allowsExec: false)
    }

    /// The calls every filter denies.
    public static var deniedByDefault: [String] { SystemCallTable.deniedByDefault }

    /// The names ``additionalDenials`` may use (on this architecture).
    public static var knownNames: [String] { SystemCallTable.current.map(\.name) }
}
