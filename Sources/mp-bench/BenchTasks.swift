import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Does nothing: measures the cost of a process's life.
struct EmptyTask: ProcessTask {
    func run() async throws {}
}

/// Echoes integers until it receives -1. Blocking calls, like CPython's `Connection`.
struct EchoInts: ProcessTask {
    var channel: ProcessChannel<Int>
    func run() async throws {
        while true {
            let value = try channel.receiveBlocking()
            if value < 0 { return }
            try channel.sendBlocking(value)
        }
    }
}

/// Echoes integers with the async API.
struct AsyncEchoInts: ProcessTask {
    var channel: ProcessChannel<Int>
    func run() async throws {
        for try await value in channel.messages {
            if value < 0 { return }
            try await channel.send(value)
        }
    }
}

/// Sends `count` frames of 1 MiB after a "go" frame.
struct MebibyteSender: ProcessTask {
    var sender: ChannelSender<Int>
    var count: Int
    func run() async throws {
        let buffer = [UInt8](repeating: 120, count: 1 << 20)
        try sender.sendBytesBlocking([1])
        for _ in 0..<count { try sender.sendBytesBlocking(buffer) }
        sender.close()
    }
}

/// The trivial function of the pool benchmarks.
struct Identity: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { x }
}

/// About 12 ms of integer arithmetic.
struct Churn: ProcessFunction {
    func callAsFunction(_ seed: Int) async throws -> Int {
        var x = UInt64(truncatingIfNeeded: seed) | 1
        for _ in 0..<90_000_000 { x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        return Int(truncatingIfNeeded: x >> 1)
    }
}

/// Kills its own worker, like the OOM killer would.
struct SelfKill: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        kill(getpid(), SIGKILL)
        return x
    }
}

/// Force-unwraps nil: in a release build, a trap with no message (`SIGILL`).
struct NilUnwrap: ProcessTask {
    var text: String
    func run() async throws -> Int { Int(text)! }
}

/// Force-unwraps nil in a pool worker.
struct NilUnwrapOnCall: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { Int("not \(x)")! }
}
