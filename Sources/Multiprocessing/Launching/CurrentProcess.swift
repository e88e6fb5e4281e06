import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Facts about the process this code runs in: CPython's `current_process()`, `parent_process()`
/// and `cpu_count()`.
public enum CurrentProcess {
    private static let state = Mutex<(name: String, isChild: Bool)>(("MainProcess", false))

    /// `"MainProcess"` in the program that was started by hand; in a child, the name given to
    /// its ``ChildProcess``.
    public static var name: String { state.withLock { $0.name } }

    /// `true` inside a process started by this library.
    public static var isChild: Bool { state.withLock { $0.isChild } }

    /// This process's id.
    public static var pid: Int32 { getpid() }

    /// The parent's process id.
    public static var parentPID: Int32 { getppid() }

    /// How many CPUs this process may use: the CPU affinity mask, capped by a cgroup CPU quota
    /// (containers), and never less than 1. What CPython 3.13's `process_cpu_count()` reports;
    /// `cpu_count()` ignores both and over-subscribes containers.
    public static var cpuCount: Int { CPUCount.current }

    static func becomeChild(named name: String) {
        state.withLock { $0 = (name, true) }
    }
}
