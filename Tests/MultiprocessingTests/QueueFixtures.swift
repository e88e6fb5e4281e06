import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the queue tests (internal, at file scope, so a child can find them by name).

/// An item that says who put it and in which order (goes through the codec).
struct Tagged: Codable, Sendable, Equatable {
    var producer: Int
    var index: Int
}

/// Puts `Tagged(producer, 0..<count)`, through the async or the blocking form.
struct TaggedProducer: ProcessTask {
    var queue: ProcessQueue<Tagged>
    var producer: Int
    var count: Int
    var useAsync: Bool
    func run() async throws {
        for index in 0..<count {
            if useAsync {
                try await queue.put(Tagged(producer: producer, index: index))
            } else {
                try queue.putBlocking(Tagged(producer: producer, index: index))
            }
        }
    }
}

/// Puts every integer of `range`.
struct RangeProducer: ProcessTask {
    var queue: ProcessQueue<Int>
    var range: Range<Int>
    func run() async throws {
        for i in range { try queue.putBlocking(i) }
    }
}

/// Takes integers until the queue is closed and empty; returns them in the order taken.
struct Collector: ProcessTask {
    var queue: ProcessQueue<Int>
    var useAsync: Bool
    func run() async throws -> [Int] {
        var taken: [Int] = []
        while true {
            do {
                taken.append(useAsync ? try await queue.get() : try queue.getBlocking())
            } catch {
                guard error == .closed else { throw error }
                return taken
            }
        }
    }
}

/// Takes integers and writes each into `log` (slot 0 holds the count), forever: to be killed.
struct LoggingConsumer: ProcessTask {
    var queue: ProcessQueue<Int>
    var log: SharedArray<Int>
    func run() async throws {
        while true {
            let item = try queue.getBlocking()
            let n = log[0]
            log[n + 1] = item
            log[0] = n + 1
        }
    }
}

/// Says so through `flag`, then waits for an item that never comes (to be killed asleep).
struct BlockedConsumer: ProcessTask {
    var queue: ProcessQueue<Int>
    var flag: SharedMemory
    func run() async throws {
        flag.baseAddress.storeBytes(of: 1, as: Int.self)
        _ = try queue.getBlocking()
    }
}

/// Set in a process that must stall (forever) while decoding a ``StallItem`` marked `stall`.
nonisolated(unsafe) var stallFlag: SharedMemory?

/// An item whose decoding stalls in a process that set ``stallFlag``: it raises the flag and
/// sleeps, inside the queue's `get`, holding the queue's lock (items this large are decoded in
/// place), until it is killed.
struct StallItem: Codable, Sendable, Equatable {
    var index: Int
    var stall: Bool
    var padding: [UInt8]

    init(index: Int, stall: Bool, padding: Int) {
        self.index = index
        self.stall = stall
        self.padding = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: padding)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        index = try container.decode(Int.self, forKey: .index)
        stall = try container.decode(Bool.self, forKey: .stall)
        padding = try container.decode([UInt8].self, forKey: .padding)
        if stall, let flag = stallFlag {
            flag.baseAddress.storeBytes(of: 1, as: Int.self)
            while true { sleep(10) }
        }
    }
}

/// Takes items, stalling inside the `get` of the first one marked `stall`.
struct StallingConsumer: ProcessTask {
    var queue: ProcessQueue<StallItem>
    var flag: SharedMemory
    func run() async throws {
        stallFlag = flag
        while true { _ = try queue.getBlocking() }
    }
}

/// Puts byte arrays of the given sizes (a pattern per item) and returns at once: the process
/// exits right after its last `put`.
struct ExitingProducer: ProcessTask {
    var queue: ProcessQueue<[UInt8]>
    var sizes: [Int]
    func run() async throws {
        for (i, size) in sizes.enumerated() { try queue.putBlocking(patterned(size, seed: i)) }
    }
}

/// `size` bytes that depend on `seed` and on the position.
func patterned(_ size: Int, seed: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    bytes.withUnsafeMutableBufferPointer { buffer in
        for i in 0..<size { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ seed &* 7) }
    }
    return bytes
}

/// Takes `count` byte arrays from `inbox` and puts each back on `outbox` (async forms).
struct BytesEcho: ProcessTask {
    var inbox: ProcessQueue<[UInt8]>
    var outbox: ProcessQueue<[UInt8]>
    var count: Int
    func run() async throws {
        for _ in 0..<count { try await outbox.put(try await inbox.get()) }
    }
}

/// Takes items, adds each to `total`, marks it done; stops when the queue is closed.
struct JoinWorker: ProcessTask {
    var queue: JoinableQueue<Int>
    var total: SharedValue<Int>
    func run() async throws {
        while true {
            let item: Int
            do {
                item = try await queue.get()
            } catch .closed {
                return
            }
            total.add(item)
            try queue.taskDone()
        }
    }
}

/// Closes `queue` after `delay`.
struct DelayedCloser: ProcessTask {
    var queue: ProcessQueue<Int>
    var delay: Duration
    func run() async throws {
        try await Task.sleep(for: delay)
        queue.close()
    }
}

/// Counts this process's memfds before, while and after large items travel through a queue
/// between it and a child.
struct QueueMemfdProbe: ProcessTask {
    func run() async throws -> [Int] {
        let before = openMemfdCount()
        var during = -1
        do {
            let inbox = try ProcessQueue<[UInt8]>(ringBytes: 64 << 10)
            let outbox = try ProcessQueue<[UInt8]>(ringBytes: 64 << 10)
            let echo = try ChildProcess(BytesEcho(inbox: inbox, outbox: outbox, count: 4))
            try await echo.start()
            for i in 0..<4 { try await inbox.put(patterned(100_000 + i, seed: i)) }
            for i in 0..<4 {
                guard try await outbox.get() == patterned(100_000 + i, seed: i) else { return [-1] }
            }
            try await echo.value
            during = openMemfdCount()
        }
        return [before, during, openMemfdCount()]
    }
}

/// An item that refuses to decode when its value is negative.
struct RefusingItem: Codable, Sendable, Equatable {
    struct Refused: Error {}
    var value: Int
    var padding: [UInt8] = []

    init(value: Int, padding: Int = 0) {
        self.value = value
        self.padding = [UInt8](repeating: 1, count: padding)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        value = try container.decode(Int.self, forKey: .value)
        padding = try container.decode([UInt8].self, forKey: .padding)
        if value < 0 { throw Refused() }
    }
}

// MARK: - Consumers that die holding items

/// Takes `take` items (writing them to `log[1...]`), marks `finish` of them done, sets
/// `log[0]` to 1, then waits to be killed.
struct HoldingConsumer: ProcessTask {
    var queue: JoinableQueue<Int>
    var log: SharedArray<Int>
    var take: Int
    var finish: Int
    func run() async throws {
        for i in 0..<take { log.store(try queue.getBlocking(timeout: .seconds(20)), at: i + 1) }
        for _ in 0..<finish { try queue.taskDone() }
        log.store(1, at: 0)
        while true { try await Task.sleep(for: .seconds(10)) }
    }
}

/// Takes one byte array, writes its size to `log[1]`, sets `log[0]` to 1, then waits to be killed.
struct HoldingBytesConsumer: ProcessTask {
    var queue: JoinableQueue<[UInt8]>
    var log: SharedArray<Int>
    func run() async throws {
        log.store(try queue.getBlocking(timeout: .seconds(20)).count, at: 1)
        log.store(1, at: 0)
        while true { try await Task.sleep(for: .seconds(10)) }
    }
}

/// Waits until `array[index]` holds `value`.
func waitForSlot(_ array: SharedArray<Int>, _ index: Int = 0, equal value: Int = 1, seconds: Double = 20)
    async throws
{
    let deadline = ContinuousClock.now + .seconds(seconds)
    while array.load(at: index) != value {
        if ContinuousClock.now > deadline { throw FlagTimeout() }
        try await Task.sleep(for: .milliseconds(2))
    }
}

/// Takes items until the queue is closed, adding 1 to `done[item]` before marking each done
/// and to `progress[slot]` after, as fast as it can (to be killed at random points of `get` and
/// `taskDone`).
struct ChaosConsumer: ProcessTask {
    var queue: JoinableQueue<Int>
    var done: SharedArray<Int>
    var progress: SharedArray<Int>
    var slot: Int
    func run() async throws {
        while true {
            let item: Int
            do {
                item = try queue.getBlocking()
            } catch .closed {
                return
            }
            done.add(1, at: item)
            try queue.taskDone()
            progress.add(1, at: slot)
        }
    }
}

/// Puts `first + from..<first + count`, writing to `attempted[slot]` how many of the `count`
/// it has started to put (to be killed at random points of `put`).
struct ChaosProducer: ProcessTask {
    var queue: JoinableQueue<Int>
    var attempted: SharedArray<Int>
    var slot: Int
    var first: Int
    var from: Int
    var count: Int
    func run() async throws {
        for i in from..<count {
            attempted.store(i + 1, at: slot)
            try queue.putBlocking(first + i)
        }
    }
}

/// Takes integers until the queue is closed, adding 1 to `taken[item]` and to
/// `progress[slot]` after each (to be killed at random points of `get`).
struct CountingConsumer: ProcessTask {
    var queue: ProcessQueue<Int>
    var taken: SharedArray<Int>
    var progress: SharedArray<Int>
    var slot: Int
    func run() async throws {
        while true {
            do {
                taken.add(1, at: try queue.getBlocking())
                progress.add(1, at: slot)
            } catch .closed {
                return
            }
        }
    }
}

/// ``ChaosProducer`` for a plain queue.
struct CountingProducer: ProcessTask {
    var queue: ProcessQueue<Int>
    var attempted: SharedArray<Int>
    var slot: Int
    var first: Int
    var from: Int
    var count: Int
    func run() async throws {
        for i in from..<count {
            attempted.store(i + 1, at: slot)
            try queue.putBlocking(first + i)
        }
    }
}
