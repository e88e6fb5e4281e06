import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Every restriction gets an escape attempt that must fail, under spawn and forkserver, started
/// by root and by an unprivileged user (a child that became `nobody` starts the sandbox).
/// Tests only ever connect to 127.0.0.1. One at a time: several of them exhaust CPU, memory or
/// processes on purpose, and all of them at once (four variants each) stalled the rest of the
/// suite's timed waits for seconds on 2 cores.
@Suite("Sandbox escapes", .serialized)
struct SandboxEscapeTests {
    static let variants = SandboxVariant.all

    /// The strict preset, with sockets allowed where a test needs one to try.
    static var withSockets: Sandbox {
        var sandbox = Sandbox.strict
        sandbox.systemCalls?.allowsNewSockets = true
        return sandbox
    }

    @Test("the strict preset is in force: no capability, no_new_privs, seccomp, pid 2", arguments: variants)
    func identity(variant: SandboxVariant) async throws {
        let outcome = try await SandboxScenario.run(SandboxProbe(action: .identity), in: .strict, variant)
        let text = try #require(outcome.value, "\(outcome)").text
        #expect(text.contains("pid=2 "))
        #expect(text.contains("uid=65534"))
        #expect(text.contains("CapEff:0000000000000000"))
        #expect(text.contains("CapBnd:0000000000000000"))
        #expect(text.contains("NoNewPrivs:1"))
        #expect(text.contains("Seccomp:2"))
        let report = try #require(outcome.report)
        for restriction in [
            SandboxRestriction.noNewPrivileges, .capabilities, .fileSystem, .network, .processes, .ipc,
            .hostname, .cpuLimit, .memoryLimit, .processLimit, .landlock, .systemCallFilter,
        ] {
            #expect(report.isApplied(restriction), "\(restriction) not applied")
        }
        #expect(report.isApplied(variant.privilege == .root ? .user : .userNamespace))
        let expected: SandboxLimitMechanism = variant.privilege == .root ? .cgroupV1 : .resourceLimit
        if SandboxCgroups.Hierarchy.ofThisProcess().contains(where: { $0.controllers.contains("memory") }) {
            #expect(report.memoryLimitMechanism == expected)
        }
    }

    @Test("a TCP connection to a server on this machine's loopback is refused", arguments: variants)
    func network(variant: SandboxVariant) async throws {
        let (server, port) = try #require(loopbackListener())
        defer { close(server) }
        // The server is there: an unconfined process reaches it.
        #expect(connectLoopback(port: port) == 0)
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .connect(port: port)), in: Self.withSockets, variant)
        #expect(try #require(outcome.value, "\(outcome)").errno == ECONNREFUSED)
        // Without the permission to make sockets, there is not even a socket to try with.
        let strict = try await SandboxScenario.run(
            SandboxProbe(action: .connect(port: port)), in: .strict, variant)
        #expect(try #require(strict.value, "\(strict)").errno == EACCES)
    }

    @Test("only the sandbox's own loopback exists, and it is up", arguments: variants)
    func interfaces(variant: SandboxVariant) async throws {
        let outcome = try await SandboxScenario.run(SandboxProbe(action: .interfaces), in: .strict, variant)
        #expect(try #require(outcome.value, "\(outcome)").text == "lo")
        let echo = try await SandboxScenario.run(
            SandboxProbe(action: .loopbackEcho), in: Self.withSockets, variant)
        let result = try #require(echo.value, "\(echo)")
        #expect(result.errno == 0, "\(result)")
    }

    @Test("a file outside the allow-list cannot be read", arguments: variants)
    func readOutside(variant: SandboxVariant) async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let secret = scratch.file("secret", contents: "the secret")
        let denied = try await SandboxScenario.run(SandboxProbe(action: .read(secret)), in: .strict, variant)
        #expect(try #require(denied.value, "\(denied)").errno == ENOENT)
        // Landlock alone (no mount namespace) denies it too.
        var landlockOnly = Sandbox.strict
        landlockOnly.isolatesFileSystem = false
        let refused = try await SandboxScenario.run(
            SandboxProbe(action: .read(secret)), in: landlockOnly, variant)
        #expect(try #require(refused.value, "\(refused)").errno == EACCES)
        // Listed, it is readable: the file was there all along.
        var allowed = Sandbox.strict
        allowed.readablePaths = [scratch.path]
        let read = try await SandboxScenario.run(SandboxProbe(action: .read(secret)), in: allowed, variant)
        #expect(try #require(read.value, "\(read)").text == "the secret")
    }

    @Test("nothing outside the writable paths can be written", arguments: variants)
    func writeOutside(variant: SandboxVariant) async throws {
        let readable = ScratchDirectory(writable: true)
        let writable = ScratchDirectory(writable: true)
        defer {
            readable.remove()
            writable.remove()
        }
        var sandbox = Sandbox.strict
        sandbox.readablePaths = [readable.path]
        sandbox.writablePaths = [writable.path]
        for target in [readable.path + "/escape", "/escape", "/work/escape", "/proc/escape"] {
            let outcome = try await SandboxScenario.run(
                SandboxProbe(action: .write(target)), in: sandbox, variant)
            let errno = try #require(outcome.value, "\(outcome)").errno
            #expect([EROFS, EACCES, ENOENT].contains(errno), "\(target): errno \(errno)")
            #expect(access(target, F_OK) != 0, "\(target) was written")
        }
        let inside = try await SandboxScenario.run(
            SandboxProbe(action: .write(writable.path + "/out")), in: sandbox, variant)
        #expect(try #require(inside.value, "\(inside)").errno == 0)
        #expect(readText(writable.path + "/out") == "written")
        // The private /tmp is writable and private.
        let tmp = try await SandboxScenario.run(
            SandboxProbe(action: .write("/tmp/mp-sandbox-private")), in: sandbox, variant)
        #expect(try #require(tmp.value, "\(tmp)").errno == 0)
        #expect(access("/tmp/mp-sandbox-private", F_OK) != 0)
    }

    @Test("a fork bomb stops at the process limit", arguments: variants)
    func forkBomb(variant: SandboxVariant) async throws {
        var sandbox = Sandbox.strict
        sandbox.limits.processes = 16
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .forkBomb(attempts: 400)), in: sandbox, variant)
        let result = try #require(outcome.value, "\(outcome)")
        #expect(result.count > 0)
        #expect(result.count < 16)
        #expect(result.errno == EAGAIN)
    }

    @Test("allocating 4 GiB ends with the memory verdict", arguments: variants)
    func memory(variant: SandboxVariant) async throws {
        var sandbox = Sandbox.strict
        sandbox.limits.memory = 256 << 20
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .allocate(bytes: 4 << 30)), in: sandbox, variant)
        #expect(outcome.verdict == .memoryLimit, "\(outcome)")
    }

    @Test("spinning ends with the CPU verdict", arguments: variants)
    func cpu(variant: SandboxVariant) async throws {
        var sandbox = Sandbox.strict
        sandbox.limits.cpuTime = .seconds(1)
        let outcome = try await SandboxScenario.run(SandboxProbe(action: .spin), in: sandbox, variant)
        #expect(outcome.verdict == .cpuLimit, "\(outcome)")
    }

    @Test(
        "writing past the file-size limit: EFBIG in a Swift task, the file-size verdict for a program",
        arguments: variants)
    func fileSize(variant: SandboxVariant) async throws {
        var sandbox = Sandbox.strict
        sandbox.limits.fileSize = 1 << 20
        // Swift's threads block SIGXFSZ (Dispatch blocks all but the fault signals): the write fails.
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .writeBytes("/tmp/big", 4 << 20)), in: sandbox, variant)
        let result = try #require(outcome.value, "\(outcome)")
        #expect(result.errno == EFBIG)
        #expect(result.count == 1 << 20)
        // A program gets the signal, and the sandbox names it.
        var program = Sandbox.program
        program.limits.fileSize = 1 << 20
        let run = try ChildProcess(
            SandboxedRun(
                sandbox: program, path: "/bin/dd",
                arguments: ["if=/dev/zero", "of=/tmp/big", "bs=65536", "count=64"],
                asNobody: variant.privilege == .unprivileged, forkServer: variant.method == .forkserver))
        try await run.start()
        let ran = try await run.value
        #expect(ran.verdict == .fileSizeLimit, "\(ran.status) \(ran.errorOutput)")
        #expect(ran.status == .signaled(Signal(rawValue: SIGXFSZ)))
    }

    @Test("exec /bin/sh with exec denied ends with a verdict naming execve", arguments: variants)
    func exec(variant: SandboxVariant) async throws {
        var sandbox = Sandbox.strict
        sandbox.readablePaths = Sandbox.systemPaths  // /bin/sh is there: only the filter stops it.
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .exec("/bin/sh")), in: sandbox, variant)
        #expect(outcome.verdict == .systemCallDenied(name: "execve"), "\(outcome)")
    }

    @Test("ptrace of another process ends with a verdict naming ptrace", arguments: variants)
    func ptrace(variant: SandboxVariant) async throws {
        let victim = try ChildProcess(Sleeper(seconds: 30))
        try await victim.start()
        defer { victim.kill() }
        let pid = try #require(victim.pid)
        let outcome = try await SandboxScenario.run(SandboxProbe(action: .ptrace(pid)), in: .strict, variant)
        #expect(outcome.verdict == .systemCallDenied(name: "ptrace"), "\(outcome)")
        #expect(victim.isAlive)
    }

    @Test("a process outside is not even visible: kill finds no such process", arguments: variants)
    func killOutside(variant: SandboxVariant) async throws {
        let victim = try ChildProcess(Sleeper(seconds: 30))
        try await victim.start()
        defer { victim.kill() }
        let pid = try #require(victim.pid)
        for signal in [0, SIGKILL] {
            let outcome = try await SandboxScenario.run(
                SandboxProbe(action: .signal(pid, signal)), in: .strict, variant)
            #expect(try #require(outcome.value, "\(outcome)").errno == ESRCH)
        }
        #expect(victim.isAlive)
        let processes = try await SandboxScenario.run(SandboxProbe(action: .processes), in: .strict, variant)
        let seen = try #require(processes.value, "\(processes)")
        #expect(seen.text == "1,2")
        #expect(seen.count == 2)
    }

    @Test("a setuid-root binary grants nothing inside", arguments: variants)
    func setuid(variant: SandboxVariant) async throws {
        let scratch = ScratchDirectory()
        defer { scratch.remove() }
        let binary = scratch.path + "/id-setuid"
        let copy = try ChildProcess(
            DirectRun(path: "/bin/cp", arguments: ["/usr/bin/id", binary], asNobody: false))
        try await copy.start()
        _ = try await copy.value
        #expect(chown(binary, 0, 0) == 0)
        #expect(chmod(binary, 0o4755) == 0)
        // Outside a sandbox, nobody does gain root with it: the binary works.
        let plain = try ChildProcess(DirectRun(path: binary, arguments: [], asNobody: true))
        try await plain.start()
        #expect(try await plain.value.contains("euid=0"))
        var sandbox = Sandbox.program
        sandbox.readablePaths.append(scratch.path)
        let run = try ChildProcess(
            SandboxedRun(
                sandbox: sandbox, path: binary, arguments: [], asNobody: variant.privilege == .unprivileged,
                forkServer: variant.method == .forkserver))
        try await run.start()
        let result = try await run.value
        #expect(result.status == .exited(0), "\(result.errorOutput)")
        #expect(result.output.contains("uid=65534"))
        #expect(!result.output.contains("euid=0"))
    }

    @Test("a restriction that cannot be applied is a typed error, and nothing runs", arguments: variants)
    func unappliable(variant: SandboxVariant) async throws {
        let scratch = ScratchDirectory(writable: true)
        defer { scratch.remove() }
        let marker = scratch.path + "/ran"
        var sandbox = Sandbox.strict
        sandbox.readablePaths = ["/no/such/path/for/the/sandbox"]
        sandbox.writablePaths = [scratch.path]
        let outcome = try await SandboxScenario.run(
            SandboxProbe(action: .write(marker)), in: sandbox, variant)
        guard case .refused(.unavailable(let restriction, let reason)) = outcome else {
            Issue.record("not refused: \(outcome)")
            return
        }
        #expect(restriction == .fileSystem)
        #expect(reason.contains("/no/such/path"))
        #expect(access(marker, F_OK) != 0, "the task ran")
        // Best effort: it runs, and the report says what was not applied.
        sandbox.enforcement = .bestEffort
        let lenient = try await SandboxScenario.run(
            SandboxProbe(action: .write(marker)), in: sandbox, variant)
        #expect(try #require(lenient.value, "\(lenient)").errno == 0)
        let report = try #require(lenient.report)
        #expect(report.notApplied[.fileSystem] != nil)
        #expect(!report.isApplied(.fileSystem))
        #expect(report.isApplied(.systemCallFilter))
        #expect(access(marker, F_OK) == 0)
    }
}
