import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// A privileged sandbox's view is built once and entered after (``SandboxViewTemplates``):
/// every sandbox still gets a `/tmp` of its own, and sees what it lists as it is now.
@Suite("Sandbox view templates")
struct SandboxViewTemplateTests {
    @Test(
        "built once, entered after: a /tmp of its own each time, listed files as they are now",
        arguments: [StartMethod.spawn, .forkserver])
    func builtOnceEnteredAfter(method: StartMethod) async throws {
        guard SandboxCredentials.isPrivileged else { return }  // Templates are for root's sandboxes.
        // Outside /tmp (a private /tmp covers what is listed there: no template then).
        let directory = "/var/tmp/mp-view-template-\(getpid())-\(method)"
        _ = mkdir(directory, 0o755)
        defer {
            _ = unlink(directory + "/file")
            _ = rmdir(directory)
        }
        try write("one", to: directory + "/file")
        var sandbox = Sandbox.strict
        sandbox.readablePaths = [directory + "/file"]
        func run(_ action: SandboxProbe.Action) async throws -> ProbeResult {
            let child = try ChildProcess(SandboxProbe(action: action), startMethod: method, sandbox: sandbox)
            try await child.start()
            return try await child.value
        }

        #expect(try await run(.write("/tmp/mark")) == ProbeResult())
        #expect(SandboxViewTemplates.isKept(for: sandbox))
        // Entered from the template: the first one's /tmp is not this one's.
        #expect(try await run(.read("/tmp/mark")).errno == ENOENT)
        #expect(try await run(.read(directory + "/file")).text == "one")
        #expect(try await run(.write(directory + "/file")).errno != 0)  // Still read-only.

        // Replaced by a rename (a new file at the path): seen, not the template's clone of the old one.
        try write("two", to: directory + "/file.new")
        #expect(rename(directory + "/file.new", directory + "/file") == 0)
        #expect(!SandboxViewTemplates.isKept(for: sandbox))
        #expect(try await run(.read(directory + "/file")).text == "two")
        #expect(SandboxViewTemplates.isKept(for: sandbox))
    }

    @Test(
        "a child made by fork starts sandboxes of its own: its parent's templates and namespaces are not its")
    func forkedChildStartsItsOwn() async throws {
        guard SandboxCredentials.isPrivileged else { return }
        for _ in 0..<2 {  // A template kept, network namespaces being made ahead.
            let child = try ChildProcess(
                SandboxProbe(action: .nothing), startMethod: .forkserver, sandbox: .strict)
            try await child.start()
            #expect(try await child.value == ProbeResult())
        }
        let forked = try ChildProcess(SandboxedProbe(action: .read("/tmp/mark")), startMethod: .fork)
        try await forked.start()
        #expect(try await forked.value.errno == ENOENT)
    }

    @Test("not for a view with listed paths under a private /tmp")
    func notUnderPrivateTemporaryDirectory() {
        var sandbox = Sandbox.strict
        sandbox.readablePaths = ["/tmp/x"]
        #expect(SandboxViewTemplates.ticket(for: sandbox, runningFiles: []) == nil)
        sandbox.temporaryDirectorySize = nil
        sandbox.readablePaths = ["/proc/self"]
        #expect(SandboxViewTemplates.ticket(for: sandbox, runningFiles: []) == nil)
    }

    @Test("but for a program that runs from below a private /tmp: its files are attached through it")
    func programBelowPrivateTemporaryDirectory() throws {
        guard SandboxCredentials.isPrivileged else { return }  // Templates are for root's sandboxes.
        let sandbox = Sandbox.strict
        let ticket = SandboxViewTemplates.ticket(
            for: sandbox, runningFiles: ["/tmp/checkout/.build/debug/program", "/usr/lib/libc.so.6"])
        #expect(ticket != nil)
        // The running program itself: from below /tmp when the tests run from a clone there (as
        // a CI checkout may); its sandboxes then went through the template test above.
        #expect(SandboxViewTemplates.ticket(for: sandbox, runningFiles: SandboxHostFacts.runningFiles) != nil)
    }

    private func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SystemError("open \(path)", code: errno) }
        defer { close(fd) }
        guard Glibc.write(fd, text, text.utf8.count) == text.utf8.count else {
            throw SystemError("write", code: errno)
        }
    }
}

/// Starts a strict sandbox of its own and returns what its probe found.
struct SandboxedProbe: ProcessTask {
    var action: SandboxProbe.Action

    func run() async throws -> ProbeResult {
        let child = try ChildProcess(SandboxProbe(action: action), startMethod: .forkserver, sandbox: .strict)
        try await child.start()
        return try await child.value
    }
}
