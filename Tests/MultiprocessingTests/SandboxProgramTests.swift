import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// External programs under a sandbox: output, input, time limit, verdicts.
@Suite("Sandbox programs")
struct SandboxProgramTests {
    static let methods: [StartMethod] = [.spawn, .forkserver]

    @Test("a script runs with its output and errors captured and its input given", arguments: methods)
    func script(method: StartMethod) async throws {
        let result = try await Sandbox.program.run(
            "/bin/sh", arguments: ["-c", "read line; echo \"got $line\"; echo oops >&2; exit 3"],
            input: Array("hello\n".utf8), startMethod: method)
        #expect(result.status == .exited(3))
        #expect(result.output == "got hello\n")
        #expect(result.errorOutput == "oops\n")
        #expect(result.verdict == nil)
        #expect(!result.isSuccess)
        #expect(result.report.isApplied(.network))
    }

    @Test("a script sees no network, a read-only file system and a private /tmp", arguments: methods)
    func confined(method: StartMethod) async throws {
        let script = """
            cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '
            echo x > /usr/escape 2>/dev/null || echo "read-only"
            echo y > /tmp/inside && cat /tmp/inside
            ls /root 2>/dev/null || echo "no /root"
            id -u
            """
        let result = try await Sandbox.program.run("/bin/sh", arguments: ["-c", script], startMethod: method)
        #expect(result.status == .exited(0), "\(result.errorOutput)")
        #expect(result.output == "lo\nread-only\ny\nno /root\n65534\n")
    }

    @Test("a program past its time limit is killed with the time-limit verdict", arguments: methods)
    func timeLimit(method: StartMethod) async throws {
        let result = try await Sandbox.program.run(
            "/bin/sh", arguments: ["-c", "echo started; while :; do :; done"], timeLimit: .milliseconds(300),
            startMethod: method)
        #expect(result.verdict == .timeLimit)
        #expect(result.status == .signaled(.kill))
        #expect(result.output == "started\n")
    }

    @Test("a program that may not start another is stopped at its exec, named", arguments: methods)
    func noExec(method: StartMethod) async throws {
        var sandbox = Sandbox.program
        sandbox.systemCalls?.allowsExec = false
        let result = try await sandbox.run(
            "/bin/sh", arguments: ["-c", "echo before; /bin/true; echo after"], startMethod: method)
        #expect(result.output == "before\n")
        #expect(result.verdict == .systemCallDenied(name: "execve"))
    }

    @Test("a program that is not visible inside cannot run")
    func invisible() async throws {
        let result = try await Sandbox.strict.run("/bin/true")
        #expect(result.status == .exited(127))
        #expect(result.errorOutput.contains("No such file"))
    }

    @Test("output beyond the limit is dropped and said to be")
    func outputLimit() async throws {
        let result = try await Sandbox.program.run(
            "/bin/sh", arguments: ["-c", "head -c 100000 /dev/zero"], outputLimit: 1000)
        #expect(result.status == .exited(0))
        #expect(result.standardOutput.count == 1000)
        #expect(result.outputTruncated)
    }

    @Test("a program over its CPU time ends with the CPU verdict")
    func cpu() async throws {
        var sandbox = Sandbox.program
        sandbox.limits.cpuTime = .seconds(1)
        let result = try await sandbox.run("/bin/sh", arguments: ["-c", "while :; do :; done"])
        #expect(result.verdict == .cpuLimit)
    }
}
