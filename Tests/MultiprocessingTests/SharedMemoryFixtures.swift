import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the shared-memory tests (internal, at file scope, so a child can find them).

/// Adds 1 to a shared integer `count` times, lock-free.
struct AtomicAdder: ProcessTask {
    var value: SharedValue<Int>
    var count: Int
    func run() async throws {
        for _ in 0..<count { value.add(1) }
    }
}

/// Adds 0.5 to a shared Double `count` times under its lock (async waits every tenth time).
struct LockedDoubleAdder: ProcessTask {
    var value: SharedValue<Double>
    var count: Int
    func run() async throws {
        for i in 0..<count {
            if i % 10 == 0 {
                try await value.withLock { $0 += 0.5 }
            } else {
                value.withLockBlocking { $0 += 0.5 }
            }
        }
    }
}

/// Writes `index * 10 + k` into its slice of the array and counts into a shared histogram.
struct SliceWriter: ProcessTask {
    var array: SharedArray<Int>
    var histogram: SharedArray<UInt32>
    var index: Int
    var width: Int
    func run() async throws {
        array.withUnsafeMutableBufferPointer { buffer in
            for k in 0..<width { buffer[index * width + k] = index * 10 + k }
        }
        for k in 0..<1000 { histogram.add(1, at: k % histogram.count) }
    }
}

/// Makes anonymous segments of its own, maps a parent's, says so, and waits to be killed.
struct SegmentHolder: ProcessTask {
    var flag: SharedMemory
    func run() async throws {
        let own = try (0..<3).map { _ in try SharedMemory(size: 1 << 20) }
        let value = try SharedValue(7)
        let lock = try ProcessLock()
        try lock.acquireBlocking()
        withExtendedLifetime((own, value, lock)) {
            flag.baseAddress.storeBytes(of: 1, as: Int.self)
            while true { sleep(10) }
        }
    }
}

/// Attaches a named segment by name and writes `value` at offset 0; tries to unlink it too.
struct NamedWriter: ProcessTask {
    var name: String
    var value: Int
    func run() async throws -> String {
        let memory = try SharedMemory.attach(name: name)
        memory.baseAddress.storeBytes(of: value, as: Int.self)
        do {
            try memory.unlink()
            return "unlinked"
        } catch {
            return "\(error)"
        }
    }
}

/// Counts this process's memfds before, while sharing a segment with a grandchild that is then
/// SIGKILLed, and after releasing everything.
struct AnonymousLeakProbe: ProcessTask {
    func run() async throws -> [Int] {
        let before = openMemfdCount()
        var during = -1
        do {
            let flag = try SharedMemory(size: 8)
            let holder = try ChildProcess(SegmentHolder(flag: flag))
            try holder.start()
            try await waitForFlag(flag)
            holder.kill()
            _ = try await holder.join()
            during = openMemfdCount()
        }
        return [before, during, openMemfdCount()]
    }
}
