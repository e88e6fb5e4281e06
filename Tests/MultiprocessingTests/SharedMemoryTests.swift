import Multiprocessing
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The entries of /dev/shm (named POSIX shared memory) right now.
func sharedMemoryNames() -> Set<String> {
    guard let dir = opendir("/dev/shm") else { return [] }
    defer { closedir(dir) }
    var names: Set<String> = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        // PostgreSQL's own segments (the cluster suite's server, restarted by one of its tests)
        // are not ours.
        if name != "." && name != ".." && !name.hasPrefix("PostgreSQL.") { names.insert(name) }
    }
    return names
}

/// How many memfd segments this process has open.
func openMemfdCount() -> Int {
    #if !os(Linux)
        return 0
    #endif
    guard let dir = opendir("/proc/self/fd") else { return 0 }
    defer { closedir(dir) }
    var count = 0
    var target = [CChar](repeating: 0, count: 256)
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) {
            String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
        }
        let n = readlink("/proc/self/fd/\(name)", &target, 255)
        if n > 0
            && String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self).hasPrefix(
                "/memfd:swift-multiprocessing")
        {
            count += 1
        }
    }
    return count
}

@Suite("Shared memory")
struct SharedMemoryTests {
    @Test("atomic adds from three processes and the parent give the exact total")
    func atomicTotals() async throws {
        let value = try SharedValue(0)
        let children = try (0..<3).map { i in
            try ChildProcess(
                AtomicAdder(value: value, count: 100_000), startMethod: i == 2 ? .forkserver : .spawn)
        }
        for child in children { try await child.start() }
        for _ in 0..<100_000 { value.add(1) }
        for child in children { try await child.value }
        #expect(value.load() == 400_000)
        #expect(value.exchange(5) == 400_000)
        let failed = value.compareExchange(expected: 4, desired: 9)
        #expect(failed.exchanged == false && failed.original == 5)
        let done = value.compareExchange(expected: 5, desired: 9)
        #expect(done.exchanged && done.original == 5)
        #expect(value.subtract(10) == -1)
        value.store(3)
        #expect(value.get() == 3)
    }

    @Test("locked read-modify-write of a Double from two processes and the parent is exact")
    func lockedTotals() async throws {
        let value = try SharedValue(0.0)
        let children = try (0..<2).map { _ in try ChildProcess(LockedDoubleAdder(value: value, count: 20_000))
        }
        for child in children { try await child.start() }
        try await onThread {
            for _ in 0..<20_000 { value.withLockBlocking { $0 += 0.5 } }
        }
        for child in children { try await child.value }
        #expect(value.get() == 30_000)
        try await value.withLock { $0 = -1 }
        #expect(value.pointer.pointee == -1)
    }

    @Test("an array written by children in place is read by the parent, zero copy")
    func arrays() async throws {
        let width = 4
        let array = try SharedArray(repeating: -1, count: 3 * width)
        let histogram = try SharedArray<UInt32>(repeating: 0, count: 7, locked: false)
        #expect(histogram.lock == nil)
        let children = try (0..<3).map { i in
            try ChildProcess(SliceWriter(array: array, histogram: histogram, index: i, width: width))
        }
        for child in children { try await child.start() }
        for child in children { try await child.value }
        var expected: [Int] = []
        for i in 0..<3 { for k in 0..<width { expected.append(i * 10 + k) } }
        #expect(Array(array) == expected)
        #expect(histogram.reduce(0, +) == 3000)
        #expect(histogram.snapshot.count == 7)
        let sum = array.withLockBlocking { $0.reduce(0, +) }
        #expect(sum == array.reduce(0, +))
        let fromList = try SharedArray([1.5, 2.5])
        fromList[1] = 4
        #expect(fromList.snapshot == [1.5, 4])
    }

    @Test("anonymous segments leave nothing behind when every user is SIGKILLed or released")
    func anonymousLeakNothing() async throws {
        let unrelated = { (names: Set<String>) in names.filter { !$0.hasPrefix("mp-test-") } }
        let before = unrelated(sharedMemoryNames())
        // In a child of its own, so other tests running in parallel don't disturb the counts.
        let probe = try ChildProcess(AnonymousLeakProbe())
        try await probe.start()
        let counts = try await probe.value
        #expect(counts == [0, 1, 0], "memfds open: before, while shared with a killed child, after release")
        #expect(unrelated(sharedMemoryNames()) == before)
    }

    @Test("a named segment: create, attach elsewhere, only the creator unlinks, mappings outlive the name")
    func namedLifecycle() async throws {
        let name = "mp-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let created = try SharedMemory.create(name: name, size: 64, lifetime: .untilUnlinked)
        #expect(created.isCreator && created.name == "/" + name)
        #expect(sharedMemoryNames().contains(name))
        #expect(throws: SharedMemoryError.alreadyExists(name: "/" + name)) {
            try SharedMemory.create(name: name, size: 64)
        }
        let child = try ChildProcess(NamedWriter(name: name, value: 99))
        try await child.start()
        #expect(try await child.value == "\(SharedMemoryError.notCreator(name: "/" + name))")
        // The child attached, wrote and exited: the name is still there for everyone else.
        #expect(sharedMemoryNames().contains(name))
        #expect(created.baseAddress.load(as: Int.self) == 99)
        let attached = try SharedMemory.attach(name: "/" + name)
        #expect(attached.size == 64 && !attached.isCreator)
        #expect(throws: SharedMemoryError.notCreator(name: "/" + name)) { try attached.unlink() }
        try created.unlink()
        try created.unlink()  // A second unlink does nothing.
        #expect(!sharedMemoryNames().contains(name))
        #expect(throws: SharedMemoryError.notFound(name: "/" + name)) { try SharedMemory.attach(name: name) }
        attached.baseAddress.storeBytes(of: 5, as: Int.self)
        #expect(created.baseAddress.load(as: Int.self) == 5)
    }

    @Test("a named segment made untilReleased loses its name with its creator's handle")
    func namedUntilReleased() async throws {
        let name = "mp-test-rel-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let created = try SharedMemory.create(name: name, size: 16)
            #expect(sharedMemoryNames().contains(name))
            withExtendedLifetime(created) {}
        }
        #expect(!sharedMemoryNames().contains(name))
    }

    @Test(
        "a creator that ends normally: released names go at once, the others with it, and so does its tracker"
    )
    func creatorEndsNormally() async throws {
        let released = uniqueSegmentName("released")
        let leftover = uniqueSegmentName("leftover")
        defer { _ = shm_unlink("/" + leftover) }  // Only if the test failed.
        let (receiver, sender) = try ProcessChannel<Int32>.oneWay()
        let creator = try ChildProcess(
            NamedCreator(tracked: [leftover], released: [released], report: sender, waitForKill: false))
        try await creator.start()
        let reported = try await receiver.receive(timeout: .seconds(20))
        let tracker = try #require(reported > 0 ? reported : nil, "the creator has no resource tracker")
        #expect(try await creator.value == [], "a released name must be unlinked at once")
        // The creator ended holding `leftover`.
        #expect(await waitUntilUnlinked(leftover))
        #expect(await ProcessProbe.waitGone(tracker, seconds: 10), "a tracker must not outlive its creator")
    }

    @Test(
        "a program the creator started, holding every descriptor it inherited, does not keep the tracker alive"
    )
    func trackerNotInherited() async throws {
        let name = uniqueSegmentName("inherit")
        defer { _ = shm_unlink("/" + name) }  // Only if the test failed.
        let creator = try ChildProcess(TrackedThenSpawn(name: name))
        try await creator.start()
        let pids = try await creator.value
        let (sleeper, tracker) = (pids[0], pids[1])
        defer { if sleeper > 1 { kill(sleeper, SIGKILL) } }
        #expect(!ProcessProbe.isGone(sleeper))
        #expect(tracker > 1, "the creator has no resource tracker")
        // Generous: a tracker needs only to be woken, but CI's first seconds stall everything.
        let unlinked = await waitUntilUnlinked(name, seconds: 30)
        #expect(
            unlinked,
            """
            the tracker never saw its creator end: tracker \(tracker) \(ProcessProbe.describe(tracker)), \
            sleeper \(sleeper) \(ProcessProbe.describe(sleeper))
            """)
    }

    @Test("a .fork child's own names go when it ends; its parent's stay")
    func forkedChildTracking() async throws {
        let parentName = uniqueSegmentName("fork-parent")
        let childName = uniqueSegmentName("fork-child")
        defer {
            _ = shm_unlink("/" + parentName)  // Only if the test failed.
            _ = shm_unlink("/" + childName)
        }
        let creator = try ChildProcess(ForkedTracking(parentName: parentName, childName: childName))
        try await creator.start()
        do {
            let facts = try await creator.value
            #expect(facts == [true, true], "[parent's name kept, child's name removed]")
        } catch ProcessError.crashed {
            // A forked copy of a threaded process may deadlock (documented): not this test's subject.
        }
        #expect(await waitUntilUnlinked(parentName))
        #expect(await waitUntilUnlinked(childName))
    }

    @Test("bad names and sizes are typed errors")
    func badInput() {
        #expect(throws: SharedMemoryError.invalidName("a/b")) {
            try SharedMemory.create(name: "a/b", size: 8)
        }
        #expect(throws: SharedMemoryError.invalidName("")) { try SharedMemory.create(name: "", size: 8) }
        #expect(throws: SharedMemoryError.invalidSize(0)) { try SharedMemory(size: 0) }
        #expect(throws: SharedMemoryError.invalidSize(-1)) { try SharedArray(repeating: 0, count: -1) }
    }
}
