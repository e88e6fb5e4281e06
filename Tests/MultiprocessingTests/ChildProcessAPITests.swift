import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Prints `lines` numbered lines to stdout and a line to stderr, and returns how many it printed.
struct Chatterbox: ProcessTask {
    var lines: Int
    func run() async throws -> Int {
        for i in 0..<lines { print("line \(i) " + String(repeating: "x", count: 50)) }
        report("chatterbox: done on stderr")
        return lines
    }
}

/// Waits until killed.
struct Idler: ProcessTask {
    func run() async throws { while true { try await Task.sleep(for: .seconds(60)) } }
}

/// The text of a small file (`/proc/<pid>/comm`), or `nil`.
func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    return n < 0 ? nil : Array(buffer[0..<n])
}

@Suite("ChildProcess API: async start, captured stdout, AnyChildProcess, process names")
struct ChildProcessAPITests {
    @Test("many children started at once from async tasks leave the cooperative threads free")
    func asyncStartNeverBlocks() async throws {
        // The part of a start that blocks (the spawn and the write of the task) must run on one
        // of the library's own threads. Asked by name rather than timed with a heartbeat: the
        // rest of the suite, running beside this test, keeps the 2 cooperative threads busy.
        let prefix = "heartbeat-start-\(getpid())-"
        let threads = Mutex<[String]>([])
        StartHook.set { name in
            guard name.hasPrefix(prefix) else { return }
            let comm = readSmallFile("/proc/thread-self/comm") ?? []
            let thread = String(decoding: comm.filter { $0 != 10 }, as: UTF8.self)
            threads.withLock { $0.append(thread) }
        }
        defer { StartHook.set(nil) }
        let children = try (0..<3).map { try ChildProcess(Exiter(code: 0), name: "\(prefix)\($0)") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for child in children { group.addTask { try await child.start() } }
            try await group.waitForAll()
        }
        for child in children { #expect(try await child.join() == .exited(0)) }
        let seen = threads.withLock { $0 }
        #expect(seen.count == 3)
        #expect(seen.allSatisfy { $0.hasPrefix("mp-") }, "a start blocked a cooperative thread: \(seen)")
    }

    @Test(
        "an async start of a task larger than a socket buffer", arguments: [StartMethod.spawn, .forkserver])
    func asyncStartLargeTask(method: StartMethod) async throws {
        let items = Array(0..<100_000)  // Several hundred kilobytes encoded.
        let child = try ChildProcess(Reverser(items: items), startMethod: method)
        try await child.start()
        #expect(try await child.value == items.reversed())
    }

    @Test("an async start twice is refused, as a blocking one is")
    func asyncStartTwice() async throws {
        let child = try ChildProcess(Exiter(code: 0))
        try await child.start()
        await #expect(throws: ProcessError.self) { try await child.start() }
        try await child.join()
    }

    @Test(
        "stdout is captured whole, past a pipe buffer, without deadlock; stderr still flows",
        arguments: [StartMethod.spawn, .forkserver, .fork])
    func capturedStandardOutput(method: StartMethod) async throws {
        let lines = 20_000  // About 1.2 MB: many pipe buffers.
        let child = try ChildProcess(
            Chatterbox(lines: lines), startMethod: method, capturesStandardOutput: true)
        try await child.start()
        #expect(try await child.value == lines)
        #expect(try await child.join() == .exited(0))
        let output = child.standardOutput.split(separator: "\n")
        #expect(output.count == lines)
        #expect(output.first?.hasPrefix("line 0 ") == true)
        #expect(output.last?.hasPrefix("line \(lines - 1) ") == true)
        #expect(child.standardErrorTail.contains("chatterbox: done on stderr"))
    }

    @Test("without capture, standardOutput is empty")
    func notCaptured() async throws {
        let child = try ChildProcess(Exiter(code: 0))
        try await child.start()
        try await child.join()
        #expect(child.standardOutput.isEmpty)
        #expect(child.capturesStandardOutput == false)
    }

    @Test("children of different task types share one join loop")
    func anyChildProcess() async throws {
        let children: [any AnyChildProcess] = [
            try ChildProcess(Doubler(value: 2), name: "doubler"),
            try ChildProcess(Idler(), name: "idler"),
            try ChildProcess(Exiter(code: 3), name: "exiter"),
        ]
        for child in children { try await child.start() }
        #expect(Set(children.compactMap(\.pid)).count == 3)
        for child in children where child.name == "idler" { child.terminate() }
        var statuses: [String: Multiprocessing.ExitStatus] = [:]
        for child in children { statuses[child.name] = try await child.join() }
        #expect(statuses == ["doubler": .exited(0), "idler": .signaled(.terminate), "exiter": .exited(3)])
        #expect(children.allSatisfy { !$0.isAlive && $0.exitStatus != nil })
    }

    @Test(
        "ps shows a child by its name: comm for every start method, argv[0] when spawned",
        arguments: [StartMethod.spawn, .forkserver])
    func processName(method: StartMethod) async throws {
        let name = "mp-name-check-\(method == .spawn ? "s" : "f")-long-suffix"
        let child = try ChildProcess(Idler(), name: name, startMethod: method)
        try await child.start()
        let pid = try #require(child.pid)
        // The child names itself once it has its task: look until it has (bounded).
        var comm = ""
        for _ in 0..<2000 {
            comm = String(decoding: readSmallFile("/proc/\(pid)/comm") ?? [], as: UTF8.self)
            if comm == String(name.prefix(15)) + "\n" { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(comm == String(name.prefix(15)) + "\n")
        if method == .spawn {
            let argv = readSmallFile("/proc/\(pid)/cmdline") ?? []
            let argv0 = String(decoding: argv.prefix { $0 != 0 }, as: UTF8.self)
            #expect(argv0 == name)
        }
        child.kill()
        try await child.join()
    }
}
