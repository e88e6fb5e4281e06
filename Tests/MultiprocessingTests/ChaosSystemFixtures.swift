@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Holds every free descriptor of the process (under a lowered limit), then lets some go.
final class DescriptorHog {
    private var held: [Int32] = []

    /// Lowers this process's descriptor limit to `headroom` above the highest descriptor in use,
    /// so that exhausting it takes little time and memory.
    static func lowerLimit(headroom: Int) -> Bool {
        var highest: Int32 = 2
        if let dir = opendir("/proc/self/fd") {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if let fd = Int32(name) { highest = max(highest, fd) }
            }
            closedir(dir)
        }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        limit.rlim_cur = rlim_t(Int(highest) + 1 + headroom)
        return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
    }

    /// Takes every descriptor left.
    func exhaust() {
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { return }
            held.append(fd)
        }
    }

    /// Lets `count` descriptors go (the most recently taken).
    func free(_ count: Int) {
        for _ in 0..<min(count, held.count) { close(held.removeLast()) }
    }

    func freeAll() { free(held.count) }
}

/// Runs every kind of operation that needs descriptors with 0, 1, 2, ... descriptors left, so
/// that each of its steps meets the limit once; returns what went wrong (empty when all held).
///
/// Run in a child so that the test runner's own limit is untouched. Each operation must either
/// work or throw its typed error carrying `EMFILE`; and once the descriptors are back, each must
/// work again.
struct DescriptorLimitProbe: ProcessTask {
    struct Report: Codable, Sendable {
        /// Operation → how many attempts ended in a typed `EMFILE` error.
        var typedErrors: [String: Int] = [:]
        /// Operation → whether it worked once the descriptors were back.
        var recovered: [String: Bool] = [:]
        /// Anything else: wrong error types, wrong results.
        var problems: [String] = []
    }

    var steps = 10

    func run() async throws -> Report {
        var report = Report()
        guard DescriptorHog.lowerLimit(headroom: 48) else {
            report.problems.append("setrlimit failed: errno \(Glibc.errno)")
            return report
        }
        let hog = DescriptorHog()
        func typed(_ operation: String, _ code: Int32) {
            if code == EMFILE || code == ENFILE {
                report.typedErrors[operation, default: 0] += 1
            } else {
                report.problems.append("\(operation): errno \(code) instead of EMFILE")
            }
        }

        // Channels: open, talk, close (the first close in this process needs a dead socket).
        for left in 0...steps {
            hog.exhaust()
            hog.free(left)
            do {
                let (a, b) = try ProcessChannel<Int>.pair()
                hog.exhaust()  // Close and talk with nothing left.
                try await a.send(left)
                let got = try await b.receive(timeout: .seconds(5))
                if got != left { report.problems.append("channel: \(got) != \(left)") }
                a.close()
                b.close()
                if !a.isClosed || !b.isClosed { report.problems.append("channel did not close") }
                hog.freeAll()
            } catch .system(let error) {
                hog.freeAll()
                typed("channel", error.code)
            } catch {
                hog.freeAll()
                report.problems.append("channel with \(left) left: \(error)")
            }
        }
        do {
            let (a, b) = try ProcessChannel<Int>.pair()
            try await a.send(7)
            report.recovered["channel"] = try await b.receive(timeout: .seconds(5)) == 7
            a.close()
            b.close()
        } catch {
            report.problems.append("channel after recovery: \(error)")
        }

        // A child start (the first one of this process: its reactor has not been needed yet).
        for left in 0...steps {
            hog.exhaust()
            hog.free(left)
            do {
                let child = try ChildProcess(Doubler(value: left))
                try await child.start()
                hog.freeAll()
                let value = try await child.value
                if value != left * 2 { report.problems.append("child start: \(value) != \(left * 2)") }
            } catch ProcessError.launchFailed(let error) {
                hog.freeAll()
                typed("child start", error.code)
            } catch {
                hog.freeAll()
                report.problems.append("child start with \(left) left: \(error)")
            }
        }
        do {
            let child = try ChildProcess(Doubler(value: 21))
            try await child.start()
            report.recovered["child start"] = try await child.value == 42
        } catch {
            report.problems.append("child start after recovery: \(error)")
        }

        // Shared memory.
        for left in 0...2 {
            hog.exhaust()
            hog.free(left)
            do {
                let value = try SharedValue(left)
                hog.freeAll()
                if value.load() != left { report.problems.append("shared value: wrong value") }
            } catch .system(let error) {
                hog.freeAll()
                typed("shared memory", error.code)
            } catch {
                hog.freeAll()
                report.problems.append("shared memory with \(left) left: \(error)")
            }
        }
        do {
            report.recovered["shared memory"] = try SharedValue(5).load() == 5
        } catch {
            report.problems.append("shared memory after recovery: \(error)")
        }

        // A process pool.
        for left in [0, 2, 5] {
            hog.exhaust()
            hog.free(left)
            do {
                let result = try await withProcessPool(workers: 1) { pool in
                    try await pool.apply(Square(), 3)
                }
                hog.freeAll()
                if result != 9 { report.problems.append("pool: \(result) != 9") }
            } catch {
                hog.freeAll()
                if let code = Self.systemCode(of: error) {
                    typed("pool", code)
                } else {
                    report.problems.append("pool with \(left) left: \(error)")
                }
            }
        }
        do {
            report.recovered["pool"] =
                try await withProcessPool(workers: 1) { try await $0.apply(Square(), 4) } == 16
        } catch {
            report.problems.append("pool after recovery: \(error)")
        }
        return report
    }

    /// The errno of a typed error that carries a system error, if it does.
    static func systemCode(of error: any Error) -> Int32? {
        switch error {
        case ProcessError.launchFailed(let error): error.code
        case ChannelError.system(let error): error.code
        case SharedMemoryError.system(let error): error.code
        case let error as SystemError: error.code
        case PoolError.workerStartFailed(_, let cause?): cause.code
        default: nil
        }
    }
}

/// Writes bytes that are not a frame on its own control channel (fd 3 in a spawned child), then
/// returns a value or hangs.
struct ControlChannelVandal: ProcessTask {
    var hang: Bool
    func run() async throws -> Int {
        let garbage = Array("this is not a frame of the control protocol\n".utf8)
        _ = garbage.withUnsafeBytes { write(3, $0.baseAddress, $0.count) }
        if hang {
            while true { usleep(100_000) }
        }
        return 7
    }
}

/// Crashes two calls below its `run`, in the way it is told.
struct CrashSite: ProcessTask {
    enum Kind: String, Codable, CaseIterable, Sendable {
        case forceUnwrap, indexOutOfRange, nullWrite, abort
    }
    var kind: Kind

    func run() async throws -> Int {
        let result = outerFrame(kind) + 1
        return result
    }

    @inline(never) func outerFrame(_ kind: Kind) -> Int {
        let result = crashHere(kind)
        return result &* 3
    }

    @inline(never) func crashHere(_ kind: Kind) -> Int {
        switch kind {
        case .forceUnwrap:
            let missing = Int("not a number \(getpid())")
            return missing!
        case .indexOutOfRange:
            let values = [1, 2, 3]
            return values[values.count + Int(getpid() % 1)]
        case .nullWrite:
            let pointer = UnsafeMutablePointer<Int>(bitPattern: 8 + Int(getpid() % 1))!
            pointer.pointee = 1
            return pointer.pointee
        case .abort:
            Glibc.abort()
        }
    }
}

/// Lets a holder take a lock and die, reaps it, then acquires the lock: returns, per try, how
/// many liveness slices this process slept meanwhile (0 when the waiter checked on arrival).
struct ArrivalAfterDeathProbe: ProcessTask {
    var kind: DeadHolderLock
    var tries: Int

    func run() async throws -> [Int] {
        var slept: [Int] = []
        for _ in 0..<tries {
            let flag = try SharedMemory(size: 8)
            let plain = try ProcessLock()
            let reentrant = try ProcessRLock()
            let holder = try ChildProcess(DeadHolder(kind: kind, lock: plain, rlock: reentrant, flag: flag))
            try await holder.start()
            try await waitForFlag(flag)
            holder.kill()
            _ = try await holder.join()  // Dead and reaped before anyone asks for the lock.
            let before = LockWord.livenessSlices.load(ordering: .relaxed)
            let acquisition =
                switch kind {
                case .lockBlocking: try plain.acquireBlocking(timeout: .seconds(20))
                case .rlockBlocking: try reentrant.acquireBlocking(timeout: .seconds(20))
                }
            slept.append(LockWord.livenessSlices.load(ordering: .relaxed) - before)
            guard acquisition == .ownerDied(pid: holder.pid!) else { throw FlagTimeout() }
        }
        return slept
    }
}
