import Multiprocessing
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Waits up to `seconds` for `name` to leave /dev/shm.
func waitUntilUnlinked(_ name: String, seconds: Double = 10) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if !sharedMemoryNames().contains(name) { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return !sharedMemoryNames().contains(name)
}

func uniqueSegmentName(_ label: String) -> String {
    "mp-test-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

@Suite("Chaos: shared memory", .serialized)
struct ChaosSharedMemoryTests {
    @Test(
        "a creator SIGKILLed (alone, or with its process group): its tracker unlinks what it created until released, nothing else",
        arguments: [false, true])
    func creatorKilled(wholeGroup: Bool) async throws {
        let tracked = uniqueSegmentName("tracked")
        let kept = uniqueSegmentName("kept")
        let shared = uniqueSegmentName("attached")
        let mine = try SharedMemory.create(name: shared, size: 64, lifetime: .untilUnlinked)
        defer {
            try? mine.unlink()
            _ = shm_unlink("/" + kept)
            _ = shm_unlink("/" + tracked)  // Only if the test failed.
        }
        let (receiver, sender) = try ProcessChannel<Int32>.oneWay()
        let creator = try ChildProcess(
            NamedCreator(
                tracked: [tracked], kept: [kept], attached: [shared], report: sender, waitForKill: true))
        try await creator.start()
        let reported = try await receiver.receive(timeout: .seconds(20))
        guard reported > 0 else {
            // Never signal a pid that is not one (kill(-1) reaches every process).
            creator.kill()
            _ = try await creator.join()
            Issue.record("the creator has no resource tracker")
            return
        }
        let tracker = reported
        #expect(sharedMemoryNames().isSuperset(of: [tracked, kept, shared]))
        // Ctrl-C and `kill` reach the tracker without harm: it outlives its creator on purpose.
        kill(tracker, SIGINT)
        kill(tracker, SIGTERM)
        kill(tracker, SIGHUP)
        if wholeGroup { creator.kill() } else { kill(creator.pid!, SIGKILL) }
        #expect(try await creator.join() == .signaled(.kill))
        #expect(await waitUntilUnlinked(tracked), "the tracker left \(tracked) behind")
        #expect(await ProcessProbe.waitGone(tracker, seconds: 10), "the tracker outlived its work")
        #expect(sharedMemoryNames().contains(kept), "a name made untilUnlinked must survive its creator")
        #expect(
            sharedMemoryNames().contains(shared), "an attached name must never be unlinked by the attacher")
        if !ProcessProbe.isGone(tracker) { kill(tracker, SIGKILL) }
    }

    @Test(
        "a creator taken down with its SIGKILLed parent: the tree goes, its tracker stays to unlink, then goes"
    )
    func creatorsParentKilled() async throws {
        let tracked = uniqueSegmentName("tree")
        defer { _ = shm_unlink("/" + tracked) }  // Only if the test failed.
        let (receiver, sender) = try ProcessChannel<[Int32]>.oneWay()
        let root = try ChildProcess(NamedCreatorParent(tracked: tracked, report: sender))
        try await root.start()
        let pids = try await receiver.receive(timeout: .seconds(30))
        guard pids.count == 2, pids[0] > 1, pids[1] > 1 else {
            root.kill()
            _ = try await root.join()
            Issue.record("no creator or no tracker: \(pids)")
            return
        }
        let (creator, tracker) = (pids[0], pids[1])
        #expect(sharedMemoryNames().contains(tracked))
        kill(root.pid!, SIGKILL)
        #expect(try await root.join() == .signaled(.kill))
        #expect(await ProcessProbe.waitGone(creator, seconds: 10), "the creator outlived its parent")
        #expect(
            await waitUntilUnlinked(tracked), "the tracker was taken down with the tree, or left the name")
        #expect(await ProcessProbe.waitGone(tracker, seconds: 10))
        for pid in [creator, tracker] where !ProcessProbe.isGone(pid) { kill(pid, SIGKILL) }
    }

    @Test("a tracker killed on purpose is replaced on the next creation, and the new one knows every name")
    func trackerReplaced() async throws {
        let first = uniqueSegmentName("before")
        let second = uniqueSegmentName("after")
        defer {
            _ = shm_unlink("/" + first)  // Only if the test failed.
            _ = shm_unlink("/" + second)
        }
        let (mine, theirs) = try ProcessChannel<String>.pair()
        let creator = try ChildProcess(CreatorOnCommand(channel: theirs))
        try await creator.start()
        defer { creator.kill() }
        try await mine.send(first)
        guard let old = Int32(try await mine.receive(timeout: .seconds(20))), old > 1 else {
            Issue.record("no tracker")
            return
        }
        kill(old, SIGKILL)
        #expect(await ProcessProbe.waitGone(old, seconds: 10))
        try await mine.send(second)
        guard let new = Int32(try await mine.receive(timeout: .seconds(20))), new > 1 else {
            Issue.record("no new tracker")
            return
        }
        #expect(new != old)
        kill(creator.pid!, SIGKILL)
        _ = try await creator.join()
        #expect(await waitUntilUnlinked(first), "the new tracker was not told of the name made before it")
        #expect(await waitUntilUnlinked(second))
        #expect(await ProcessProbe.waitGone(new, seconds: 10))
    }
}
