import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// A sandboxed child works with the rest of the library, dies with its parent, is reaped and
/// leaves nothing behind.
@Suite("Sandbox lifecycle")
struct SandboxLifecycleTests {
    static let methods: [StartMethod] = [.spawn, .forkserver]

    @Test("channel ends, shared memory and queues passed as properties work inside", arguments: methods)
    func sharing(method: StartMethod) async throws {
        let (mine, theirs) = try ProcessChannel<String>.pair()
        let memory = try SharedMemory(size: 4096)
        let queue = try ProcessQueue<Int>()
        let child = try ChildProcess(
            SandboxedSharing(channel: theirs, memory: memory, queue: queue), startMethod: method,
            sandbox: .strict)
        try await child.start()
        #expect(try await mine.receive(timeout: .seconds(30)) == "from the sandbox")
        try await mine.send("to the sandbox")
        #expect(try await child.value == "to the sandbox")
        #expect(memory.bytes.load(fromByteOffset: 0, as: Int.self) == 42)
        #expect(try await queue.get(timeout: .seconds(30)) == 7)
        // The child's end moved to it: its exit is end-of-file here.
        await #expect(throws: ChannelError.self) { _ = try await mine.receive(timeout: .seconds(30)) }
    }

    @Test("it is reaped, and its cgroups are removed when it ends", arguments: methods)
    func reapedAndCleaned(method: StartMethod) async throws {
        let child = try ChildProcess(SandboxProbe(action: .nothing), startMethod: method, sandbox: .strict)
        try await child.start()
        let report = try #require(child.sandboxReport)
        _ = try await child.value
        #expect(try await child.join() == .exited(0))
        let pid = try #require(child.pid)
        #expect(kill(pid, 0) != 0 && errno == ESRCH)  // Reaped: not even a zombie.
        for directory in report.cgroupDirectories {
            var gone = false
            for _ in 0..<500 where !gone {  // The supervisor removes them as it leaves.
                gone = access(directory, F_OK) != 0
                if !gone { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(gone, "\(directory) left behind")
        }
    }

    @Test(
        "two at once each have cgroups of their own, holding the task but not the process the parent knows",
        arguments: methods)
    func cgroupsOfTheirOwn(method: StartMethod) async throws {
        let children = try (0..<2).map { _ in
            try ChildProcess(Sleeper(seconds: 600), startMethod: method, sandbox: .strict)
        }
        for child in children { try await child.start() }
        var members: [Set<Int32>] = []
        var directories: [String] = []
        for child in children {
            var mine = Set<Int32>()
            let report = try #require(child.sandboxReport)
            let supervisor = try #require(child.pid)
            for directory in report.cgroupDirectories {
                #expect(!directories.contains(directory), "\(directory) is shared")
                directories.append(directory)
                let pids = (readText(directory + "/cgroup.procs") ?? "").split(separator: "\n").compactMap {
                    Int32($0)
                }
                // A supervised start's init joins the cgroups before it forks the task: both are
                // in. A direct start's task joins them itself; its init stays out.
                #expect(pids.count >= (Self.isDirect(method) ? 1 : 2), "\(directory): \(pids)")
                #expect(!pids.contains(supervisor), "the supervisor or init is in \(directory)")
                mine.formUnion(pids)
            }
            members.append(mine)
        }
        #expect(members[0].isDisjoint(with: members[1]), "\(members)")
        for child in children {
            child.kill()
            #expect(try await child.join() == .signaled(.kill))
        }
        // Nothing of either sandbox outlives it (the init and the task die with the killed
        // supervisor, a moment later), and its cgroups go with it.
        var left = members[0].union(members[1])
        for _ in 0..<500 where !left.isEmpty {
            left = left.filter { kill($0, 0) == 0 || errno != ESRCH }
            if !left.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(left.isEmpty, "\(left) outlived their sandbox")
        for directory in directories {
            var gone = false
            for _ in 0..<500 where !gone {
                gone = access(directory, F_OK) != 0
                if !gone { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(gone, "\(directory) left behind")
        }
    }

    /// Whether a start by this process with `method` goes without a supervisor
    /// (``SandboxDirectStart``).
    static func isDirect(_ method: StartMethod) -> Bool {
        method == .forkserver && SandboxCredentials.isPrivileged
    }

    @Test("a privileged forkserver start has no supervisor: its pid is the init, pid 1 of its namespace")
    func directStart() async throws {
        try #require(Self.isDirect(.forkserver), "the tests run as root")
        let child = try ChildProcess(Sleeper(seconds: 600), startMethod: .forkserver, sandbox: .strict)
        try await child.start()
        let pid = try #require(child.pid)
        let status = readText("/proc/\(pid)/status") ?? ""
        let namespacePIDs = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") }?
            .split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { Int32($0) }
        #expect(namespacePIDs == [pid, 1], "\(status)")
        // Its only child is the task, pid 2 inside, in the cgroups the parent made.
        let children = (readText("/proc/\(pid)/task/\(pid)/children") ?? "")
            .split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }
        #expect(children.count == 1, "\(children)")
        let task = children.first ?? -1
        let taskStatus = readText("/proc/\(task)/status") ?? ""
        #expect(taskStatus.contains("NSpid:\t\(task)\t2"), "\(taskStatus)")
        let report = try #require(child.sandboxReport)
        for directory in report.cgroupDirectories {
            #expect(directory.contains("\(SandboxCgroups.prefix)\(getpid())-"), "\(directory)")
            let pids = (readText(directory + "/cgroup.procs") ?? "").split(separator: "\n").compactMap {
                Int32($0)
            }
            #expect(pids == [task], "\(directory): \(pids)")
        }
        child.kill()
        #expect(try await child.join() == .signaled(.kill))
    }

    @Test("a direct start ends the way its task does: an exit code, a signal, a crash")
    func directStatus() async throws {
        try #require(Self.isDirect(.forkserver), "the tests run as root")
        let exiter = try ChildProcess(Exiter(code: 3), startMethod: .forkserver, sandbox: .strict)
        try await exiter.start()
        #expect(try await exiter.join() == .exited(3))
        #expect(exiter.sandboxVerdict == nil)
        let stopped = try ChildProcess(Sleeper(seconds: 600), startMethod: .forkserver, sandbox: .strict)
        try await stopped.start()
        stopped.send(.interrupt)
        #expect(try await stopped.join() == .signaled(.interrupt))
        let crasher = try ChildProcess(Trapper(kind: .fatalError), startMethod: .forkserver, sandbox: .strict)
        try await crasher.start()
        let crashed = try await crasher.join()
        #expect(crashed == .signaled(.illegalInstruction) || crashed == .signaled(.trap), "\(crashed)")
    }

    @Test("killed, it is reported as killed and what it held is cleaned up", arguments: methods)
    func killed(method: StartMethod) async throws {
        let child = try ChildProcess(Sleeper(seconds: 600), startMethod: method, sandbox: .strict)
        try await child.start()
        let report = try #require(child.sandboxReport)
        child.kill()
        #expect(try await child.join() == .signaled(.kill))
        #expect(child.sandboxVerdict == nil)
        for directory in report.cgroupDirectories {
            var gone = false
            for _ in 0..<500 where !gone {
                gone = access(directory, F_OK) != 0
                if !gone { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(gone, "\(directory) left behind")
        }
    }

    @Test("terminate reaches the task, which ends by SIGTERM", arguments: methods)
    func terminate(method: StartMethod) async throws {
        let child = try ChildProcess(Sleeper(seconds: 600), startMethod: method, sandbox: .strict)
        try await child.start()
        child.terminate()
        #expect(try await child.join() == .signaled(.terminate))
    }

    /// The supervisor and the init ignore the group's signals; the task once reset them only
    /// after telling the parent it was in force, so a terminate() right after the start could
    /// find SIGTERM still ignored there and the task ran on (here: 600 s).
    @Test("terminate at once after each start reaches the task, every time", arguments: methods)
    func terminateAtOnce(method: StartMethod) async throws {
        for _ in 0..<5 {
            let child = try ChildProcess(Sleeper(seconds: 600), startMethod: method, sandbox: .strict)
            try await child.start()
            child.terminate()
            let status = try await child.join(timeout: .seconds(15))
            if status == nil {
                child.kill()
                _ = try await child.join()
            }
            #expect(status == .signaled(.terminate))
        }
    }

    @Test("it dies with its parent, taking the whole sandbox along", arguments: methods)
    func diesWithParent(method: StartMethod) async throws {
        let (mine, theirs) = try ProcessChannel<[String]>.pair()
        let name = "sbxorphan\(getpid() % 10000)\(method == .spawn ? "s" : "f")"
        let parent = try ChildProcess(
            SandboxParent(channel: theirs, forkServer: method == .forkserver, taskName: name))
        try await parent.start()
        let facts = try await mine.receive(timeout: .seconds(60))
        let supervisor = try #require(Int32(facts[0]))
        // The start returns once the sandbox is in force; the task names itself just after.
        var running = false
        for _ in 0..<1000 where !running {
            running = !processes(named: name).isEmpty
            if !running { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(running, "the sandboxed task is not running")
        parent.kill()
        _ = try await parent.join()
        // Counted, not timed: up to 10 s for the kernel to deliver and the tree to go.
        var left: [Int32] = []
        for _ in 0..<1000 {
            left = processes(named: name)
            let supervisorGone = kill(supervisor, 0) != 0 && errno == ESRCH
            if left.isEmpty && supervisorGone { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(left.isEmpty, "the sandboxed task outlived its parent")
        #expect(kill(supervisor, 0) != 0 && errno == ESRCH)
        // Its cgroups, whose supervisor was killed, are removed by the next sandbox started here.
        let next = try ChildProcess(SandboxProbe(action: .nothing), startMethod: method, sandbox: .strict)
        try await next.start()
        _ = try await next.value
        for directory in facts.dropFirst() {
            #expect(access(directory, F_OK) != 0, "\(directory) left behind")
        }
    }

    @Test("the fork start method and impossible sandboxes are refused before anything starts")
    func refusedUpFront() throws {
        #expect {
            _ = try ChildProcess(SandboxProbe(action: .nothing), startMethod: .fork, sandbox: .strict)
        } throws: { error in
            guard case ProcessError.sandbox(.unsupportedStartMethod("fork")) = error else { return false }
            return true
        }
        let impossible: [Sandbox] = [
            {
                var s = Sandbox.strict
                s.readablePaths = ["relative/path"]
                return s
            }(),
            {
                var s = Sandbox.strict
                s.writablePaths = ["/"]
                return s
            }(),
            {
                var s = Sandbox.strict
                s.limits.processes = 0
                return s
            }(),
            {
                var s = Sandbox.strict
                s.systemCalls?.additionalDenials = ["no_such_call"]
                return s
            }(),
        ]
        for broken in impossible {
            #expect {
                _ = try ChildProcess(SandboxProbe(action: .nothing), sandbox: broken)
            } throws: { error in
                guard case ProcessError.sandbox(.invalidConfiguration) = error else { return false }
                return true
            }
        }
    }

    @Test("an additional denial is enforced and named")
    func additionalDenial() async throws {
        var sandbox = Sandbox.strict
        sandbox.systemCalls?.additionalDenials = ["kill"]
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .signal(1, 0)), in: sandbox, SandboxVariant(method: .spawn, privilege: .root)
        )
        #expect(outcome.verdict == .systemCallDenied(name: "kill"), "\(outcome)")
    }
}

@Suite("Sandbox pools")
struct SandboxPoolTests {
    @Test("a sandboxed pool maps like an unconfined one", arguments: [StartMethod.spawn, .forkserver])
    func map(method: StartMethod) async throws {
        var options = PoolOptions()
        options.startMethod = method
        options.sandbox = .strict
        let squares = try await withProcessPool(workers: 2, options: options) { pool in
            try await pool.map(Square(), over: 0..<200)
        }
        #expect(squares == (0..<200).map { $0 * $0 })
    }

    @Test("a worker stopped by the sandbox is a worker loss with the verdict")
    func verdict() async throws {
        var options = PoolOptions()
        options.sandbox = .strict
        try await withProcessPool(workers: 1, options: options) { pool in
            do {
                _ = try await pool.apply(ShellOut(), 1)
                Issue.record("the shell started")
            } catch PoolError.workerLost(let loss) {
                #expect(loss.sandboxVerdict == .systemCallDenied(name: "execve"))
                #expect(loss.description.contains("execve"))
            }
            // The pool goes on with a fresh worker.
            #expect(try await pool.apply(Square(), 9) == 81)
        }
    }

    @Test("a pool whose sandbox cannot be applied fails its work with the typed error")
    func refused() async throws {
        var options = PoolOptions()
        var sandbox = Sandbox.strict
        sandbox.readablePaths = ["/no/such/path/for/the/pool"]
        options.sandbox = sandbox
        try await withProcessPool(workers: 1, options: options) { pool in
            do {
                _ = try await pool.apply(Square(), 3)
                Issue.record("the work ran")
            } catch PoolError.sandbox(let error) {
                #expect(error.restriction == .fileSystem)
            }
        }
    }
}
