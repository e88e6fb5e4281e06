@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// What a probe found: an `errno` (0 for success), some text, a count.
struct ProbeResult: Codable, Sendable, Equatable {
    var errno: Int32 = 0
    var text: String = ""
    var count: Int = 0
}

/// An escape attempt (or an ordinary action) run inside a sandbox.
struct SandboxProbe: ProcessTask {
    enum Action: Codable, Sendable {
        case nothing
        case identity
        case read(String)
        case write(String)
        case connect(port: UInt16)
        case loopbackEcho
        case interfaces
        case processes
        case forkBomb(attempts: Int)
        case allocate(bytes: Int)
        case spin
        case exec(String)
        case ptrace(Int32)
        case signal(Int32, Int32)
        case writeBytes(String, Int)
    }

    var action: Action

    func run() async throws -> ProbeResult {
        switch action {
        case .nothing:
            return ProbeResult()
        case .identity:
            var text = "pid=\(getpid()) uid=\(getuid()) gid=\(getgid())"
            for line in (readText("/proc/self/status") ?? "").split(separator: "\n")
            where line.hasPrefix("CapEff") || line.hasPrefix("CapBnd") || line.hasPrefix("NoNewPrivs")
                || line.hasPrefix("Seccomp:")
            {
                text += " " + line.replacing("\t", with: "")
            }
            return ProbeResult(text: text)
        case .read(let path):
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { return ProbeResult(errno: errno) }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = read(fd, &buffer, buffer.count)
            return n < 0
                ? ProbeResult(errno: errno)
                : ProbeResult(text: String(decoding: buffer[0..<n], as: UTF8.self))
        case .write(let path):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { return ProbeResult(errno: errno) }
            defer { close(fd) }
            let n = write(fd, "written", 7)
            return n == 7 ? ProbeResult() : ProbeResult(errno: errno)
        case .connect(let port):
            return ProbeResult(errno: connectLoopback(port: port))
        case .loopbackEcho:
            // A server and a client inside the sandbox, on its own loopback.
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard server >= 0 else { return ProbeResult(errno: errno, text: "socket") }
            defer { close(server) }
            var address = loopbackAddress(port: 0)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0, listen(server, 1) == 0 else { return ProbeResult(errno: errno, text: "bind") }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) }
            }
            return ProbeResult(
                errno: connectLoopback(port: UInt16(bigEndian: address.sin_port)), text: "connect")
        case .interfaces:
            // /proc/net/dev lists the interfaces of the reader's network namespace.
            let lines = (readText("/proc/net/dev") ?? "").split(separator: "\n").dropFirst(2)
            let names = lines.compactMap {
                $0.split(separator: ":").first?.trimmingPrefix(while: { $0 == " " })
            }
            return ProbeResult(text: names.joined(separator: ","), count: names.count)
        case .processes:
            guard let dir = opendir("/proc") else { return ProbeResult(errno: errno) }
            var pids: [Int] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if let pid = Int(name) { pids.append(pid) }
            }
            closedir(dir)
            return ProbeResult(
                text: pids.sorted().map(String.init).joined(separator: ","), count: Int(getpid()))
        case .forkBomb(let attempts):
            // Bounded by the attempts, whatever the limit does.
            var children: [pid_t] = []
            var refusal: Int32 = 0
            for _ in 0..<attempts {
                let pid = fork()
                if pid == 0 {
                    while true { pause() }
                }
                if pid < 0 {
                    refusal = errno
                    break
                }
                children.append(pid)
            }
            for pid in children {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
            return ProbeResult(errno: refusal, count: children.count)
        case .allocate(let bytes):
            // Touched, in 64 MiB steps, so that the memory is really used.
            var blocks: [UnsafeMutableRawPointer] = []
            let step = 64 << 20
            var total = 0
            while total < bytes {
                let block = UnsafeMutableRawPointer.allocate(byteCount: step, alignment: 4096)
                memset(block, 1, step)
                blocks.append(block)
                total += step
            }
            for block in blocks { block.deallocate() }
            return ProbeResult(count: total)
        case .spin:
            var x: UInt64 = 1
            while true {
                x = x &* 6_364_136_223_846_793_005 &+ 1
                if x == 0 { break }
            }
            return ProbeResult(count: Int(truncatingIfNeeded: x))
        case .exec(let path):
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup("-c"), strdup("exit 0"), nil]
            execv(path, argv)
            return ProbeResult(errno: errno)
        case .ptrace(let pid):
            return ProbeResult(errno: ptraceAttach(pid))
        case .signal(let pid, let signal):
            return ProbeResult(errno: kill(pid, signal) == 0 ? 0 : errno)
        case .writeBytes(let path, let count):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else { return ProbeResult(errno: errno) }
            defer { close(fd) }
            let chunk = [UInt8](repeating: 7, count: 1 << 16)
            var written = 0
            while written < count {
                let n = write(fd, chunk, chunk.count)
                if n <= 0 { return ProbeResult(errno: errno, count: written) }
                written += n
            }
            return ProbeResult(count: written)
        }
    }
}

/// `ptrace(PTRACE_ATTACH, pid)`: the C function is variadic, so it is called through its
/// address with the four arguments the system call takes.
func ptraceAttach(_ pid: Int32) -> Int32 {
    typealias Ptrace =
        @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Int
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "ptrace") else { return ENOSYS }
    let call = unsafeBitCast(symbol, to: Ptrace.self)
    return call(16, pid, nil, nil) == 0 ? 0 : errno  // PTRACE_ATTACH
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// Connects to 127.0.0.1:`port`: 0 or the `errno`.
func connectLoopback(port: UInt16) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var address = loopbackAddress(port: port)
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return rc == 0 ? 0 : errno
}

/// A TCP server listening on 127.0.0.1 (never accepting): its descriptor and port.
func loopbackListener() -> (fd: Int32, port: UInt16)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0, listen(fd, 16) == 0 else {
        close(fd)
        return nil
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        result += chunk[0..<n]
    }
    return String(decoding: result, as: UTF8.self)
}

/// Who starts the sandboxed child: this (root) test process, or a child that became `nobody`.
enum SandboxPrivilege: String, Codable, Sendable, CaseIterable {
    case root
    case unprivileged
}

/// One way of starting a sandboxed child.
struct SandboxVariant: Sendable, CustomStringConvertible {
    var method: StartMethod
    var privilege: SandboxPrivilege

    var description: String { "\(method), \(privilege)" }

    static let all: [SandboxVariant] = [
        SandboxVariant(method: .spawn, privilege: .root),
        SandboxVariant(method: .forkserver, privilege: .root),
        SandboxVariant(method: .spawn, privilege: .unprivileged),
        SandboxVariant(method: .forkserver, privilege: .unprivileged),
    ]
}

/// How a sandboxed probe ended.
enum ScenarioOutcome: Codable, Sendable {
    case value(ProbeResult, SandboxReport)
    case stopped(verdict: SandboxVerdict?, code: Int32, stderr: [String], report: SandboxReport?)
    case refused(SandboxError)
    case failed(String)

    var value: ProbeResult? {
        if case .value(let result, _) = self { return result }
        return nil
    }

    var verdict: SandboxVerdict? {
        if case .stopped(let verdict, _, _, _) = self { return verdict }
        return nil
    }

    var report: SandboxReport? {
        switch self {
        case .value(_, let report): report
        case .stopped(_, _, _, let report): report
        default: nil
        }
    }
}

/// A probe in a sandbox, started one way.
struct SandboxScenario: Codable, Sendable {
    var probe: SandboxProbe
    var sandbox: Sandbox
    var forkServer: Bool

    func execute() async -> ScenarioOutcome {
        let child: ChildProcess<SandboxProbe>
        do {
            child = try ChildProcess(
                probe, name: "sandbox-probe", startMethod: forkServer ? .forkserver : .spawn, sandbox: sandbox
            )
        } catch ProcessError.sandbox(let error) {
            return .refused(error)
        } catch {
            return .failed("init: \(error)")
        }
        do {
            try await child.start()
        } catch ProcessError.sandbox(let error) {
            // Refused after the supervisor made its cgroups: they go with it.
            _ = try? await child.join()
            let directories =
                child.pid.map {
                    SandboxCgroups.directories(of: $0, in: SandboxCgroups.Hierarchy.ofThisProcess())
                } ?? []
            for _ in 0..<500 where directories.contains(where: { access($0, F_OK) == 0 }) {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if let left = directories.first(where: { access($0, F_OK) == 0 }) {
                return .failed("refused, but \(left) was left behind")
            }
            return .refused(error)
        } catch {
            return .failed("start: \(error)")
        }
        do {
            let result = try await child.value
            return .value(result, child.sandboxReport ?? SandboxReport())
        } catch ProcessError.crashed(let crash) {
            return .stopped(
                verdict: crash.verdict, code: crash.status.code, stderr: crash.standardErrorTail,
                report: child.sandboxReport)
        } catch {
            return .failed("value: \(error)")
        }
    }

    /// Runs the scenario as `privilege` (root: here; unprivileged: in a child that became
    /// `nobody` first).
    static func run(
        _ probe: SandboxProbe, in sandbox: Sandbox, _ variant: SandboxVariant
    ) async throws -> ScenarioOutcome {
        let scenario = SandboxScenario(
            probe: probe, sandbox: sandbox, forkServer: variant.method == .forkserver)
        switch variant.privilege {
        case .root:
            return await scenario.execute()
        case .unprivileged:
            let child = try ChildProcess(AsNobody(scenario: scenario), name: "as-nobody")
            try await child.start()
            return try await child.value
        }
    }
}

/// Becomes `nobody` (no capability left: an ordinary unprivileged user), then runs a scenario.
struct AsNobody: ProcessTask {
    var scenario: SandboxScenario

    func run() async throws -> ScenarioOutcome {
        guard becomeNobody() else { return .failed("could not become nobody: errno \(errno)") }
        return await scenario.execute()
    }
}

/// Drops this process to `nobody`/`nogroup` for good.
func becomeNobody() -> Bool {
    var groups: [gid_t] = [65534]
    return setgroups(1, &groups) == 0 && setgid(65534) == 0 && setuid(65534) == 0 && getuid() == 65534
}

/// Runs `path` with `arguments` directly (no sandbox), as `nobody` when asked: its output.
struct DirectRun: ProcessTask {
    var path: String
    var arguments: [String]
    var asNobody: Bool

    func run() async throws -> String {
        if asNobody, !becomeNobody() { return "could not become nobody" }
        var pipe: [Int32] = [0, 0]
        guard Glibc.pipe(&pipe) == 0 else { return "pipe failed" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, nil)
        posix_spawn_file_actions_destroy(&actions)
        close(pipe[1])
        guard rc == 0 else { return "spawn failed: \(rc)" }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(pipe[0], &chunk, chunk.count)
            if n <= 0 { break }
            output += chunk[0..<n]
        }
        close(pipe[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return String(decoding: output, as: UTF8.self)
    }
}

/// Runs a program in a sandbox, as `nobody` first when asked.
struct SandboxedRun: ProcessTask {
    var sandbox: Sandbox
    var path: String
    var arguments: [String]
    var asNobody: Bool
    var forkServer: Bool

    func run() async throws -> SandboxedProgramResult {
        if asNobody, !becomeNobody() { throw SandboxError.setupFailed("could not become nobody") }
        return try await sandbox.run(
            path, arguments: arguments, startMethod: forkServer ? .forkserver : .spawn)
    }
}

extension SandboxedProgramResult: Codable {
    enum CodingKeys: String, CodingKey { case code, verdict, output, errors, truncated, report }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let code = try c.decode(Int32.self, forKey: .code)
        self.init(
            status: code >= 0 ? .exited(code) : .signaled(Signal(rawValue: -code)),
            verdict: try c.decodeIfPresent(SandboxVerdict.self, forKey: .verdict),
            standardOutput: try c.decode([UInt8].self, forKey: .output),
            standardError: try c.decode([UInt8].self, forKey: .errors),
            outputTruncated: try c.decode(Bool.self, forKey: .truncated),
            report: try c.decode(SandboxReport.self, forKey: .report))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status.code, forKey: .code)
        try c.encodeIfPresent(verdict, forKey: .verdict)
        try c.encode(standardOutput, forKey: .output)
        try c.encode(standardError, forKey: .errors)
        try c.encode(outputTruncated, forKey: .truncated)
        try c.encode(report, forKey: .report)
    }
}

/// A directory for a test, readable (and writable, when asked) by everyone, removed by `remove`.
struct ScratchDirectory {
    let path: String

    init(writable: Bool = false) {
        var template = Array("/tmp/mp-sandbox-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = made.map { String(cString: $0) } ?? "/tmp/mp-sandbox-test-failed"
        chmod(path, writable ? 0o777 : 0o755)
    }

    func file(_ name: String, contents: String) -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd >= 0 {
            _ = write(fd, contents, contents.utf8.count)
            close(fd)
        }
        return file
    }

    func remove() {
        guard let dir = opendir(path) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { unlink(path + "/" + name) }
        }
        closedir(dir)
        rmdir(path)
    }
}

/// Uses, inside a sandbox, what it was given: a channel end, an anonymous shared-memory segment
/// and a queue.
struct SandboxedSharing: ProcessTask {
    var channel: ProcessChannel<String>
    var memory: SharedMemory
    var queue: ProcessQueue<Int>

    func run() async throws -> String {
        memory.bytes.storeBytes(of: 42, toByteOffset: 0, as: Int.self)
        try await queue.put(7)
        try await channel.send("from the sandbox")
        return try await channel.receive(timeout: .seconds(30))
    }
}

/// Starts a sandboxed child that sleeps, tells the test its supervisor's pid and the name its
/// task runs under, then waits to be killed.
struct SandboxParent: ProcessTask {
    var channel: ProcessChannel<[String]>
    var forkServer: Bool
    var taskName: String

    func run() async throws {
        let child = try ChildProcess(
            Sleeper(seconds: 600), name: taskName, startMethod: forkServer ? .forkserver : .spawn,
            sandbox: .strict)
        try await child.start()
        try await channel.send([String(child.pid ?? 0)] + (child.sandboxReport?.cgroupDirectories ?? []))
        try await Task.sleep(for: .seconds(600))
    }
}

/// A pool function that tries to start a shell.
struct ShellOut: ProcessFunction {
    func callAsFunction(_ input: Int) async throws -> Int {
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), nil]
        execv("/bin/sh", argv)
        return input
    }
}

/// The pids of processes whose command name is `name` (at most 15 bytes are compared).
func processes(named name: String) -> [Int32] {
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    var found: [Int32] = []
    while let entry = readdir(dir) {
        let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let pid = Int32(entryName), let comm = readText("/proc/\(pid)/comm") else { continue }
        if comm.trimmingCharacters(in: "\n") == String(name.prefix(15)) { found.append(pid) }
    }
    return found
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var text = self
        while text.last == set { text.removeLast() }
        return text
    }
}
