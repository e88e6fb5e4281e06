import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

struct SmokeProbe: ProcessTask {
    func run() async throws -> String {
        var text = "pid=\(getpid()) uid=\(getuid())"
        let fd = open("/proc/self/status", O_RDONLY)
        if fd >= 0 {
            var buf = [UInt8](repeating: 0, count: 8192)
            let n = read(fd, &buf, buf.count)
            close(fd)
            let status = String(decoding: buf[0..<max(0, n)], as: UTF8.self)
            for line in status.split(separator: "\n")
            where line.hasPrefix("CapEff") || line.hasPrefix("NoNewPrivs") || line.hasPrefix("Seccomp:") {
                text += " " + line.replacing("\t", with: "")
            }
        }
        return text
    }
}

@Suite("Sandbox smoke")
struct SandboxSmokeTests {
    @Test("an empty task runs in the strict sandbox", arguments: [StartMethod.spawn, .forkserver])
    func smoke(method: StartMethod) async throws {
        let child = try ChildProcess(SmokeProbe(), startMethod: method, sandbox: .strict)
        do {
            try await child.start()
        } catch {
            Issue.record("start: \(error)")
            return
        }
        print("REPORT:\n\(child.sandboxReport!)")
        do {
            let text = try await child.value
            print("VALUE:", text)
        } catch {
            Issue.record("value: \(error)")
        }
        print("STATUS:", try await child.join())
    }
}

@Suite("Sandbox program smoke")
struct SandboxProgramSmokeTests {
    @Test("programs")
    func programs() async throws {
        let a = try await Sandbox.program.run("/bin/echo", arguments: ["hello"])
        print("A:", a.status, a.verdict as Any, a.output, a.errorOutput)
        let b = try await Sandbox.program.run("/bin/sh", arguments: ["-c", "echo one; /bin/true; echo two"])
        print("B:", b.status, b.verdict as Any, b.output, b.errorOutput)
        let c = try await Sandbox.program.run("/bin/sh", arguments: ["-c", "while :; do :; done"], timeLimit: .milliseconds(300))
        print("C:", c.status, c.verdict as Any, c.output, c.errorOutput)
        let d = try await Sandbox.program.run("/bin/cat", input: Array("piped".utf8))
        print("D:", d.status, d.verdict as Any, d.output, d.errorOutput)
        let e = try await Sandbox.program.run("/bin/sh", arguments: ["-c", "ls / ; cat /etc/hostname; id; echo hi > /x"])
        print("E:", e.status, e.verdict as Any, e.output, e.errorOutput)
    }
}
