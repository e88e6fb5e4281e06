import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Task types used by the tests. They are internal and at file scope, so a child can find them.

struct Doubler: ProcessTask {
    var value: Int
    func run() async throws -> Int { value * 2 }
}

struct Identity: ProcessTask {
    func run() async throws -> [String: Int32] {
        ["pid": getpid(), "ppid": getppid(), "nameLength": Int32(CurrentProcess.name.count)]
    }
}

struct NameReport: ProcessTask {
    func run() async throws -> String { "\(CurrentProcess.name)|\(CurrentProcess.isChild)" }
}

struct Trapper: ProcessTask {
    enum Kind: String, Codable { case fatalError, indexOutOfRange, forceUnwrap, overflow }
    var kind: Kind
    func run() async throws -> Int {
        let line = Array("about to trap: \(kind.rawValue)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        switch kind {
        case .fatalError: fatalError("the parser gave up")
        case .indexOutOfRange:
            let values = [1, 2, 3]
            return values[values.count + Int(getpid() % 1)]
        case .forceUnwrap:
            let missing: Int? = Int("not a number")
            return missing!
        case .overflow:
            return Int.max + Int(getpid() > 0 ? 1 : 0)
        }
    }
}

struct Exiter: ProcessTask {
    var code: Int32
    func run() async throws { exit(code) }
}

struct Sleeper: ProcessTask {
    var seconds: Double
    func run() async throws { try await Task.sleep(for: .seconds(seconds)) }
}

enum FixtureError: Error, Codable, Equatable {
    case badInput(String, line: Int)
}

struct CodableThrower: ProcessTask {
    var reason: String
    func run() async throws -> Int { throw FixtureError.badInput(reason, line: 42) }
}

struct PlainError: Error, CustomStringConvertible {
    var description: String { "plain failure with a custom description" }
}

struct PlainThrower: ProcessTask {
    func run() async throws { throw PlainError() }
}

/// Starts `/bin/sleep` as a plain grandchild (same process group), reports its pid, then waits.
struct GrandparentTask: ProcessTask {
    var report: ChannelSender<Int32>
    func run() async throws {
        var pid: Int32 = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("60"), nil]
        // Dispatch's worker threads block most signals, and a spawned program inherits the mask
        // of the thread that spawned it: start it with none blocked, as any careful spawner does.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        defer { posix_spawnattr_destroy(&attributes) }
        guard posix_spawn(&pid, "/bin/sleep", nil, &attributes, argv, nil) == 0 else {
            throw FixtureError.badInput("spawn", line: 0)
        }
        try await report.send(pid)
        try await Task.sleep(for: .seconds(60))
    }
}

/// Starts a library child (its own process group) and reports its pid, then waits.
struct LibraryGrandparent: ProcessTask {
    var report: ChannelSender<Int32>
    func run() async throws {
        let child = try ChildProcess(Sleeper(seconds: 60))
        try await child.start()
        try await report.send(child.pid!)
        try await Task.sleep(for: .seconds(60))
    }
}

enum EchoMessage: Codable, Equatable, Sendable {
    case text(String)
    case numbers([Double])
    case stop
}

/// Echoes every message until `.stop`, then returns how many it echoed.
struct Echoer: ProcessTask {
    var channel: ProcessChannel<EchoMessage>
    func run() async throws -> Int {
        var count = 0
        for try await message in channel.messages {
            if message == .stop { break }
            try await channel.send(message)
            count += 1
        }
        return count
    }
}

/// Sends `count` byte frames of `size` bytes, then closes.
struct ByteSender: ProcessTask {
    var sender: ChannelSender<Int>
    var count: Int
    var size: Int
    func run() async throws {
        let payload = [UInt8](repeating: 7, count: size)
        for _ in 0..<count { try await sender.sendBytes(payload) }
        sender.close()
    }
}

/// Exits at once, holding a channel end: its peer must see end-of-file.
struct QuickExit: ProcessTask {
    var channel: ProcessChannel<Int>
    func run() async throws {}
}

struct EnvironmentReport: ProcessTask {
    var key: String
    func run() async throws -> [String] {
        var buffer = [CChar](repeating: 0, count: 4096)
        let cwd = getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "?"
        return [getenv(key).map { String(cString: $0) } ?? "<unset>", cwd]
    }
}

struct Reverser<T: Codable & Sendable>: ProcessTask {
    var items: [T]
    func run() async throws -> [T] { items.reversed() }
}

enum Outer {
    struct Nested: ProcessTask {
        var text: String
        func run() async throws -> String { text.uppercased() }
    }
}

/// Helpers for checking that processes are gone.
enum ProcessProbe {
    /// `true` when `pid` no longer runs (gone, or a zombie waiting for someone else to reap it).
    static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 { return true }
        guard let fd = Optional(open("/proc/\(pid)/stat", O_RDONLY)), fd >= 0 else { return true }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, 512)
        guard n > 0 else { return true }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        guard let paren = text.lastIndex(of: ")") else { return true }
        let state = text[text.index(paren, offsetBy: 2)]
        return state == "Z" || state == "X"
    }

    /// Waits up to `seconds` for `pid` to be gone.
    static func waitGone(_ pid: Int32, seconds: Double = 5) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if isGone(pid) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return isGone(pid)
    }

    /// For a failure message: `pid`'s state, parent and wait channel, and what its descriptors
    /// are ("gone" when it no longer exists).
    static func describe(_ pid: Int32) -> String {
        func read(_ path: String) -> String? {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = Glibc.read(fd, &buffer, buffer.count)
            return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
        }
        guard pid > 0, let stat = read("/proc/\(pid)/stat") else { return "(gone)" }
        let fields = stat.split(separator: ")").last?.split(separator: " ").prefix(2).joined(separator: " ")
        var descriptors: [String] = []
        if let dir = opendir("/proc/\(pid)/fd") {
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                guard Int(name) != nil else { continue }
                var target = [CChar](repeating: 0, count: 256)
                let n = readlink("/proc/\(pid)/fd/\(name)", &target, target.count - 1)
                let text =
                    n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
                descriptors.append("\(name)=\(text)")
            }
        }
        let wchan = read("/proc/\(pid)/wchan") ?? "?"
        return "(state and parent \(fields ?? "?"), waiting in \(wchan), fds \(descriptors.sorted()))"
    }

    /// Live (non-zombie) direct children of this process, and zombie ones.
    static func children() -> (live: [Int32], zombies: [Int32]) {
        let me = getpid()
        var live: [Int32] = []
        var zombies: [Int32] = []
        guard let dir = opendir("/proc") else { return ([], []) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let pid = Int32(name) else { continue }
            let fd = open("/proc/\(pid)/stat", O_RDONLY)
            guard fd >= 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = read(fd, &buffer, 512)
            close(fd)
            guard n > 0 else { continue }
            let text = String(decoding: buffer[0..<n], as: UTF8.self)
            guard let paren = text.lastIndex(of: ")") else { continue }
            let fields = text[text.index(paren, offsetBy: 2)...].split(separator: " ")
            guard fields.count > 2, Int32(fields[1]) == me else { continue }
            if fields[0] == "Z" { zombies.append(pid) } else { live.append(pid) }
        }
        return (live, zombies)
    }
}

struct ManyEnds: ProcessTask {
    var ends: [ChannelSender<Int32>]
    func run() async throws {}
}
