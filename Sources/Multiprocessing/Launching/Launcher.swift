import CMultiprocessing
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Starts processes from one thread that lives as long as the program.
///
/// Linux delivers a child's parent-death signal when the *thread* that created it exits, and
/// the threads of Swift's cooperative pool and of Dispatch come and go: a child spawned from
/// one of them could be killed at a random moment. Spawning from this thread avoids that.
final class Launcher: Sendable {
    static let shared = Launcher()

    /// Handed from the caller to the launcher thread and back; the semaphore orders access.
    private final class Job: @unchecked Sendable {
        var body: (() -> Void)?
        let done = DispatchSemaphore(value: 0)
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private let jobs = Mutex<[Job]>([])
    private let wake = DispatchSemaphore(value: 0)
    /// Whether the thread runs; it starts on first use, and a failed start is tried again then.
    private let threadStarted = Mutex(false)
    /// The launcher thread, once it runs: work it does itself runs inline.
    private let thread = Mutex<pthread_t?>(nil)

    private init() {}

    private func startThread() throws(SystemError) {
        try threadStarted.withLock { started throws(SystemError) in
            guard !started else { return }
            try OSThread.detach(name: "mp-launcher") { [self] in
                thread.withLock { $0 = pthread_self() }
                while true {
                    wake.wait()
                    let job = jobs.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                    guard let job else { continue }
                    job.body?()
                    job.body = nil  // The caller's closure must not outlive its call.
                    job.done.signal()
                }
            }
            started = true
        }
    }

    /// Set in a child made by `fork`, whose launcher thread did not survive: run inline.
    nonisolated(unsafe) static var inForkedChild = false

    /// Runs `body` on the launcher thread and waits for it.
    ///
    /// - Throws: when the launcher thread cannot be started (no thread left); `body` does not
    ///   run then.
    func run<T>(_ body: () -> T) throws(SystemError) -> T {
        if Self.inForkedChild || isLauncherThread { return body() }
        try startThread()
        return withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) var result: T?
            nonisolated(unsafe) let unsafeBody = body
            let job = Job { result = unsafeBody() }
            jobs.withLock { $0.append(job) }
            wake.signal()
            job.done.wait()
            return result!
        }
    }

    /// Whether the caller is the launcher thread (running a job of ``runDetached(_:)``).
    private var isLauncherThread: Bool {
        guard let launcher = thread.withLock({ $0 }) else { return false }
        return pthread_equal(launcher, pthread_self()) != 0
    }

    /// Runs `body` on the launcher thread and returns at once; `body` may call ``run(_:)``
    /// (which then runs inline). For `async` starts, whose caller waits without a thread.
    ///
    /// - Throws: when the launcher thread cannot be started; `body` does not run then.
    func runDetached(_ body: @escaping @Sendable () -> Void) throws(SystemError) {
        if Self.inForkedChild { return body() }
        try startThread()
        jobs.withLock { $0.append(Job(body)) }
        wake.signal()
    }

    /// The running binary, as the kernel sees it (works even if the file was replaced).
    static let executablePath: String = {
        #if os(Linux)
            return "/proc/self/exe"
        #else
            var size: UInt32 = 4096
            var buffer = [CChar](repeating: 0, count: Int(size))
            _ = _NSGetExecutablePath(&buffer, &size)
            return String(cString: buffer)
        #endif
    }()

    /// Variables every child gets unless this process (or the caller) sets them.
    ///
    /// Swift's crash backtracer is off: each child's own crash handler reports where it crashed
    /// (``CrashReport``) in about a millisecond, where the backtracer takes 0.15–0.25 s, cannot
    /// walk release code (no frame pointers) and pushes the trap's message out of the stderr
    /// lines kept for ``ChildCrash``. Set `SWIFT_BACKTRACE` yourself to have it in children too
    /// (it runs after their handler).
    static var childDefaults: [String: String] {
        getenv("SWIFT_BACKTRACE") == nil ? ["SWIFT_BACKTRACE": "enable=no"] : [:]
    }

    /// The variables a child gets set over this process's: the child defaults, then `overrides`.
    static func childVariables(with overrides: [String: String]) -> [String: String] {
        childDefaults.merging(overrides) { $1 }
    }

    /// The environment a child gets: this process's, with the child defaults and then
    /// `overrides` applied.
    static func environment(with overrides: [String: String]) -> [String] {
        let overrides = childVariables(with: overrides)
        var result: [String] = []
        var seen = Set<String>()
        if let environ = Syscall.environment {
            var i = 0
            while let entry = environ[i] {
                let text = String(cString: entry)
                let key = String(text.prefix { $0 != "=" })
                if let value = overrides[key] {
                    result.append("\(key)=\(value)")
                } else {
                    result.append(text)
                }
                seen.insert(key)
                i += 1
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) where !seen.contains(key) {
            result.append("\(key)=\(value)")
        }
        return result
    }

    /// `posix_spawn`s the running binary. `keep` become fds 3, 4, ... in the child; `stderr`
    /// (if not -1) becomes its fd 2; every other descriptor is closed. `argv0` is what `ps`
    /// shows for the child (this program's own `argv[0]` when `nil`).
    func spawnSelf(
        argv0: String? = nil, keep: [Int32], stderr: Int32, environment: [String], workingDirectory: String?
    ) throws(SystemError) -> Int32 {
        let argv0 = argv0 ?? CommandLine.arguments.first ?? "swift-multiprocessing-child"
        let outcome: (Int32, Int32) = try run {
            var pid: Int32 = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup(argv0), nil]
            let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
            defer {
                for p in argv { free(p) }
                for p in envp { free(p) }
            }
            let rc = keep.withUnsafeBufferPointer { keepFDs in
                if let workingDirectory {
                    return workingDirectory.withCString {
                        mp_spawn(
                            Self.executablePath, argv, envp, keepFDs.baseAddress, Int32(keep.count), stderr,
                            $0, &pid)
                    }
                }
                return mp_spawn(
                    Self.executablePath, argv, envp, keepFDs.baseAddress, Int32(keep.count), stderr, nil, &pid
                )
            }
            return (rc, pid)
        }
        if outcome.0 != 0 { throw SystemError("posix_spawn", code: outcome.0) }
        return outcome.1
    }
}
