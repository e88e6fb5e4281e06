import Multiprocessing
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Chaos: launching", .serialized)
struct ChaosLaunchTests {
    static let methods = ["spawn", "forkserver", "fork", "pool"]

    @Test(
        "a SIGKILLed parent takes its whole tree with it: children, fork servers, workers, and every program they started",
        arguments: methods, DescendantKind.allCases)
    func treeDiesWithParent(method: String, kind: DescendantKind) async throws {
        try await killRootAndCheckTree(method: method, kind: kind, deaf: false)
    }

    @Test(
        "a child that ignores the parent-death signal still takes its tree down when the parent dies (channel hang-up)",
        arguments: ["spawn", "forkserver", "fork"])
    func deafChildStillDies(method: String) async throws {
        try await killRootAndCheckTree(method: method, kind: .underShell, deaf: true)
    }

    @Test(".fork children started while other threads make new types and conformances never hang")
    func forkWhileRuntimeIsBusy() async throws {
        // The task's own decoding is the task's business (`StartMethod.fork` says so): made once
        // here, so that only the library's start path is left to the children.
        let first = try ChildProcess(Doubler(value: 1), startMethod: .fork)
        try await first.start()
        #expect(try await first.value == 2)
        let hammer = RuntimeLockHammer(threads: 2)
        var hung: [String] = []
        for round in 0..<40 {
            let child = try ChildProcess(Doubler(value: round), startMethod: .fork)
            try await child.start()
            guard let status = try await child.join(timeout: .seconds(30)) else {
                hung.append(
                    "child \(round), pid \(child.pid ?? -1): \(ProcessProbe.describe(child.pid ?? -1))")
                child.kill()
                _ = try await child.join()
                continue
            }
            #expect(status == .exited(0))
            #expect(try await child.value == round * 2)
        }
        hammer.stop()
        #expect(hammer.rounds > 1000, "the hammer made only \(hammer.rounds) types")
        #expect(hung.isEmpty, "hung in the library's start path: \(hung)")
    }

    /// Starts a tree under a root process, SIGKILLs the root alone, and checks that every
    /// process below it goes within a bounded wait.
    private func killRootAndCheckTree(method: String, kind: DescendantKind, deaf: Bool) async throws {
        let marker = Descendants.marker()
        let (receiver, sender) = try ProcessChannel<[Int32]>.oneWay()
        let root = try ChildProcess(
            TreeRoot(method: method, marker: marker, kind: kind, report: sender, deaf: deaf))
        try await root.start()
        let pids: [Int32]
        do {
            pids = try await receiver.receive(timeout: .seconds(30))
        } catch {
            root.kill()
            _ = try await root.join()
            if method == "fork" { return }  // A forked copy of a threaded parent may deadlock: documented.
            throw error
        }
        let (child, sleeper) = (pids[0], pids[1])
        let tree = Descendants.tree(of: root.pid!)
        #expect(
            tree.contains(child) && tree.contains(sleeper), "tree \(tree), child \(child), sleep \(sleeper)")
        kill(root.pid!, SIGKILL)  // The parent only: everything below must follow on its own.
        #expect(try await root.join() == .signaled(.kill))
        for pid in tree {
            let gone = await ProcessProbe.waitGone(pid, seconds: 10)
            #expect(
                gone, "\(pid) (\(Descendants.commandLine(pid).joined(separator: " "))) outlived its parent")
        }
        #expect(Descendants.find(marker: marker).isEmpty)
        // Never leave a process behind, even when the test fails.
        for pid in tree + Descendants.find(marker: marker) where pid > 1 && !ProcessProbe.isGone(pid) {
            kill(pid, SIGKILL)
        }
    }
}
