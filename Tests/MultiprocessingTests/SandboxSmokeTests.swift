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
