import Multiprocessing

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
