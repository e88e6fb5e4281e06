import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

struct Square: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { x * x }
}

struct Offset: ProcessFunction {
    var by: Int
    func callAsFunction(_ x: Int) async throws -> Int { x + by }
}

/// SIGKILLs its own worker on `victim` (a stand-in for the OOM killer), after a short pause on
/// every other input so that work is spread over the workers.
struct KillOn: ProcessFunction {
    var victim: Int
    func callAsFunction(_ x: Int) async throws -> Int {
        if x == victim { kill(getpid(), SIGKILL) }
        usleep(20_000)
        return x * 10
    }
}

struct TrapOn: ProcessFunction {
    var victim: Int
    func callAsFunction(_ x: Int) async throws -> Int {
        if x == victim { fatalError("refusing input \(x)") }
        return x
    }
}

struct Nap: ProcessFunction {
    func callAsFunction(_ seconds: Double) async throws -> Int32 {
        usleep(UInt32(seconds * 1_000_000))
        return getpid()
    }
}

/// Says it has started (in shared memory), then sleeps.
struct SignallingNap: ProcessFunction {
    var started: SharedValue<Int>
    func callAsFunction(_ seconds: Double) async throws -> Int32 {
        started.store(1)
        usleep(UInt32(seconds * 1_000_000))
        return getpid()
    }
}

struct WorkerPID: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int32 { getpid() }
}

/// Allocates and touches `megabytes`, holds them, returns.
struct Hog: ProcessFunction {
    func callAsFunction(_ megabytes: Int) async throws -> Int {
        var blocks: [[UInt8]] = []
        for _ in 0..<megabytes {
            blocks.append([UInt8](repeating: 1, count: 1 << 20))
            usleep(1_000)
        }
        // Hold the peak long enough for a memory check on a busy machine (checks are periodic,
        // and a parent starved of CPU may run them late).
        usleep(600_000)
        return blocks.count
    }
}

struct OddThrower: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        if x % 2 == 1 { throw FixtureError.badInput("odd \(x)", line: x) }
        return x
    }
}

struct PlainFailure: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { throw PlainError() }
}

/// Appends this worker's pid to a file: the initializer.
struct RecordStart: ProcessTask {
    var path: String
    func run() async throws {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw FixtureError.badInput(path, line: 0) }
        let line = Array("\(getpid())\n".utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}

struct FailingInitializer: ProcessTask {
    func run() async throws { throw FixtureError.badInput("no database", line: 1) }
}

/// Counts how many inputs were pulled from it.
final class CountingInputs: Sequence, @unchecked Sendable {
    private(set) var pulled = 0
    let limit: Int
    init(limit: Int) { self.limit = limit }

    struct Iterator: IteratorProtocol {
        let owner: CountingInputs
        mutating func next() -> Int? {
            guard owner.pulled < owner.limit else { return nil }
            owner.pulled += 1
            return owner.pulled - 1
        }
    }

    func makeIterator() -> Iterator { Iterator(owner: self) }
}

struct Multiply: ProcessFunction2 {
    func callAsFunction(_ a: Int, _ b: String) async throws -> String { String(repeating: b, count: a) }
}

/// An input whose encoding fails when `refuse` is set: the parent cannot send it.
struct Picky: Codable, Sendable {
    var value: Int
    var refuse = false

    init(_ value: Int, refuse: Bool = false) {
        self.value = value
        self.refuse = refuse
    }

    func encode(to encoder: any Encoder) throws {
        if refuse {
            throw EncodingError.invalidValue(
                value, EncodingError.Context(codingPath: [], debugDescription: "refused"))
        }
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    init(from decoder: any Decoder) throws {
        value = try decoder.singleValueContainer().decode(Int.self)
    }
}

struct PickyDouble: ProcessFunction {
    func callAsFunction(_ x: Picky) async throws -> Int { x.value * 2 }
}

/// Kills its own worker (`SIGKILL` or a trap, alternately) on each of `victims`; every other
/// input is answered at once.
struct KillOnAny: ProcessFunction {
    var victims: Set<Int>
    var trap = false
    func callAsFunction(_ x: Int) async throws -> Int {
        if victims.contains(x) {
            if trap { fatalError("refusing input \(x)") }
            kill(getpid(), SIGKILL)
        }
        return x &* 3
    }
}

/// Sleeps `naps[x]` microseconds (0 when absent), then answers `x * 3`.
struct NapOn: ProcessFunction {
    var naps: [Int: UInt32]
    func callAsFunction(_ x: Int) async throws -> Int {
        if let nap = naps[x] { usleep(nap) }
        return x &* 3
    }
}

/// A little work per item so that random kills land mid-item as well as between items.
struct Churn: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        var h = UInt64(truncatingIfNeeded: x) &+ 0x9E37_79B9_7F4A_7C15
        for _ in 0..<(h % 1_000) { h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9 }
        return x &* 3
    }
}

/// Writes garbage into every socket this worker holds (its job socket among them) on `victim`.
struct GarbageOn: ProcessFunction {
    var victim: Int
    func callAsFunction(_ x: Int) async throws -> Int {
        guard x == victim else { return x &* 3 }
        let garbage = [UInt8](repeating: 0xA5, count: 64)
        for fd in Int32(3)..<Int32(256) {
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = readlink("/proc/self/fd/\(fd)", &buffer, 63)
            guard n > 0, String(decoding: buffer[..<n], as: UTF8.self).hasPrefix("socket:") else { continue }
            _ = garbage.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
        usleep(200_000)
        return x &* 3
    }
}

/// An initializer that takes its time, so that workers can be killed while it runs.
struct SlowInitializer: ProcessTask {
    var microseconds: UInt32
    func run() async throws { usleep(microseconds) }
}

/// An initializer that traps every time.
struct TrappingInitializer: ProcessTask {
    func run() async throws { fatalError("initializer cannot start") }
}

/// In a child of its own (so the test runner's limit stays as it was): a pool at the
/// descriptor limit fails its work with a typed error, then recovers once descriptors are free.
struct PoolAtDescriptorLimit: ProcessTask {
    func run() async throws -> [String] {
        var limit = rlimit(rlim_cur: 256, rlim_max: 256)
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        var report: [String] = []
        let pool = ProcessPool(workers: 1)
        report.append("before: \(try await pool.apply(Square(), 3))")
        await pool.terminate()
        var hoard: [Int32] = []
        while true {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            if fd < 0 { break }
            hoard.append(fd)
        }
        let starved = ProcessPool(workers: 1)
        do {
            report.append("starved: \(try await starved.apply(Square(), 4))")
        } catch let error as PoolError {
            if case .workerStartFailed(_, let cause?) = error {
                report.append("starved: workerStartFailed, errno \(cause.code)")
            } else {
                report.append("starved: \(error)")
            }
        }
        for fd in hoard { close(fd) }
        report.append("after: \(try await starved.apply(Square(), 5))")
        await starved.terminate()
        return report
    }
}
