@testable import Multiprocessing

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
            try await holder.start()
            try await waitForFlag(flag)
            holder.kill()
            _ = try await holder.join()
            during = openMemfdCount()
        }
        return [before, during, openMemfdCount()]
    }
}

/// Creates named segments (`tracked` until released, `kept` until unlinked), attaches
/// `attached`, and reports its resource tracker's pid (-1 for none). Then either waits to be
/// killed, or returns holding them all, after creating and releasing each of `released`.
struct NamedCreator: ProcessTask {
    var tracked: [String] = []
    var kept: [String] = []
    var attached: [String] = []
    var released: [String] = []
    var report: ChannelSender<Int32>
    var waitForKill: Bool
    func run() async throws -> [String] {
        var held: [SharedMemory] = []
        for name in tracked { held.append(try SharedMemory.create(name: name, size: 64)) }
        for name in kept {
            held.append(try SharedMemory.create(name: name, size: 64, lifetime: .untilUnlinked))
        }
        for name in attached { held.append(try SharedMemory.attach(name: name)) }
        for name in released {
            let memory = try SharedMemory.create(name: name, size: 64)
            withExtendedLifetime(memory) {}
        }
        try report.sendBlocking(ResourceTracker.shared.trackerProcess() ?? -1)
        if waitForKill { while true { sleep(10) } }
        // Still held when the process ends, as a global or a task that calls `exit` would hold it.
        for memory in held { _ = Unmanaged.passRetained(memory) }
        return released.filter { sharedMemoryNames().contains($0) }
    }
}

/// Creates `name` until released and holds it to the end, then starts `/bin/sleep` the careless
/// way (no descriptor closed, as a C library might) and returns `[its pid, the tracker's pid]`,
/// leaving it running.
struct TrackedThenSpawn: ProcessTask {
    var name: String
    func run() async throws -> [Int32] {
        let memory = try SharedMemory.create(name: name, size: 64)
        var pid: Int32 = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("30"), nil]
        defer { for p in argv { free(p) } }
        guard posix_spawn(&pid, "/bin/sleep", nil, nil, argv, nil) == 0 else {
            throw FixtureError.badInput("spawn", line: 0)
        }
        _ = Unmanaged.passRetained(memory)  // Held until the process ends.
        return [pid, ResourceTracker.shared.trackerProcess() ?? -1]
    }
}

/// Creates `parentName` until released, then has a `.fork` child create (and leave) a name of
/// its own; returns whether, after that child ended, the parent's name was still there, and
/// whether the child's was gone.
struct ForkedTracking: ProcessTask {
    var parentName: String
    var childName: String
    func run() async throws -> [Bool] {
        let memory = try SharedMemory.create(name: parentName, size: 64)
        let (receiver, sender) = try ProcessChannel<Int32>.oneWay()
        let child = try ChildProcess(
            NamedCreator(tracked: [childName], report: sender, waitForKill: false), startMethod: .fork)
        try await child.start()
        _ = try await receiver.receive(timeout: .seconds(20))
        if try await child.join(timeout: .seconds(20)) == nil { child.kill() }
        _ = try await child.value
        var childNameGone = false
        for _ in 0..<500 where !childNameGone {
            childNameGone = !sharedMemoryNames().contains(childName)
            if !childNameGone { try await Task.sleep(for: .milliseconds(20)) }
        }
        return withExtendedLifetime(memory) { [sharedMemoryNames().contains(parentName), childNameGone] }
    }
}

/// Starts a ``NamedCreator`` child that creates `tracked` and waits; reports `[child pid,
/// tracker pid]` and waits to be killed.
struct NamedCreatorParent: ProcessTask {
    var tracked: String
    var report: ChannelSender<[Int32]>
    func run() async throws {
        let (receiver, sender) = try ProcessChannel<Int32>.oneWay()
        let child = try ChildProcess(NamedCreator(tracked: [tracked], report: sender, waitForKill: true))
        try await child.start()
        let tracker = try await receiver.receive(timeout: .seconds(20))
        try await report.send([child.pid!, tracker])
        try await Task.sleep(for: .seconds(120))
    }
}

/// Creates a named segment (until released, held) for each name it receives, and answers with
/// its tracker's pid; waits to be killed once the channel closes.
struct CreatorOnCommand: ProcessTask {
    var channel: ProcessChannel<String>
    func run() async throws {
        var held: [SharedMemory] = []
        while let name = try? channel.receiveBlocking() {
            held.append(try SharedMemory.create(name: name, size: 64))
            try channel.sendBlocking(String(ResourceTracker.shared.trackerProcess() ?? -1))
        }
        withExtendedLifetime(held) { while true { sleep(10) } }
    }
}
