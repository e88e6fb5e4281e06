import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// What mp-bench and mp-bench-cluster share: the figures' helpers, the peers' figures, and a
// way to run another program.

/// A measuring function: one figure.
public typealias Measure = @Sendable () async throws -> Double
/// An entry: name, unit, which way is better (`"lower"` or `"higher"`), how to measure it.
public typealias CatalogueEntry = (String, String, String, Measure)

/// Figures of peers that are not CPython (bubblewrap, PgQueuer), by entry name: an entry's
/// measuring function records its peer's figure here, and it goes in the `python` field with
/// `"peer": <name>`. CPython is not run for such an entry.
public let peerFigures = Mutex<[String: (value: Double, peer: String)]>([:])

/// A benchmark that could not be set up (no server, a peer missing), with why.
public struct BenchSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The entries `--only a,b` asks for in this program's arguments; `nil`: every entry.
public let requestedEntries: Set<String>? = {
    let arguments = CommandLine.arguments.dropFirst()
    guard let i = arguments.firstIndex(of: "--only"), arguments.index(after: i) < arguments.endIndex else {
        return nil
    }
    return Set(arguments[arguments.index(after: i)].split(separator: ",").map(String.init))
}()

/// The middle value (the upper one of an even count); NaN for none.
public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

/// `d` in seconds.
public func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Runs a program (found on PATH) and returns its exit status and standard output.
public func runProgram(_ arguments: [String], environment extra: [String: String] = [:]) -> (Int32, String) {
    var pipeFDs: [Int32] = [-1, -1]
    guard pipe(&pipeFDs) == 0 else { return (-1, "") }
    // Close-on-exec (the child's stdout is a dup2 copy, without it): a daemon the program
    // starts, such as a database server, must not hold our end open.
    for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
    posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    var environment: [UnsafeMutablePointer<CChar>?] = []
    var index = 0
    while let entry = environ[index] {
        environment.append(strdup(entry))
        index += 1
    }
    for (key, value) in extra { environment.append(strdup("\(key)=\(value)")) }
    environment.append(nil)
    // Swift's threads block most signals and a spawned program inherits the mask.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environment)
    posix_spawnattr_destroy(&attributes)
    posix_spawn_file_actions_destroy(&actions)
    close(pipeFDs[1])
    for pointer in argv { free(pointer) }
    for pointer in environment { free(pointer) }
    guard rc == 0 else {
        close(pipeFDs[0])
        return (-1, "")
    }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(pipeFDs[0], &chunk, chunk.count)
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        output += chunk[0..<count]
    }
    close(pipeFDs[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, String(decoding: output, as: UTF8.self))
}
