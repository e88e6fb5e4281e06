import Multiprocessing
import MultiprocessingPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// The demo's prime count as a producer that does not contain its code knows it: the same queue
/// name and the same argument and result shapes (`mp-cluster-demo`'s `CountPrimes`). Only the
/// demo's worker program runs it.
struct RemoteCountPrimes: ProcessFunction, ClusterTaskNaming {
    static var clusterTaskName: String { "demo.count-primes.v1" }

    var blockSize: Int
    var log: String

    struct Answer: Codable, Sendable {
        var block: Int
        var primes: Int
        var worker: Int32
    }

    struct NotHere: Error {}

    func callAsFunction(_ block: Int) async throws -> Answer { throw NotHere() }
}

/// Relays TCP connections from `address:port` to `127.0.0.1:port`, one byte stream per
/// connection, until killed: the database as a host on a network namespace's link sees it (the
/// server itself listens on loopback only). In a child process of its own, so that its blocking
/// loop holds none of the test's threads, and so that a stalled peer stalls only its own host.
struct LoopbackRelay: ProcessTask {
    var address: String
    var port: UInt16

    func run() async throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw TestSetupError("relay: socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Self.bind(listener, address, port), listen(listener, 64) == 0 else {
            throw TestSetupError("relay: cannot listen on \(address):\(port): errno \(errno)")
        }
        // Each end's peer: what one reads, the other is sent.
        var peers: [Int32: Int32] = [:]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            fds += peers.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { return }
            for entry in fds where entry.revents != 0 {
                if entry.fd == listener {
                    let inbound = accept(listener, nil, nil)
                    guard inbound >= 0 else { continue }
                    let outbound = socket(
                        AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
                    guard outbound >= 0, Self.connect(outbound, "127.0.0.1", port) else {
                        close(inbound)
                        if outbound >= 0 { close(outbound) }
                        continue
                    }
                    peers[inbound] = outbound
                    peers[outbound] = inbound
                    continue
                }
                guard let peer = peers[entry.fd] else { continue }
                let count = read(entry.fd, &buffer, buffer.count)
                if count > 0, Self.sendAll(peer, buffer[0..<count]) { continue }
                // End of stream or an error on either side: the connection is over.
                peers[entry.fd] = nil
                peers[peer] = nil
                close(entry.fd)
                close(peer)
            }
        }
    }

    static func socketAddress(_ address: String, _ port: UInt16) -> sockaddr_in {
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, address, &socketAddress.sin_addr)
        return socketAddress
    }

    static func bind(_ fd: Int32, _ address: String, _ port: UInt16) -> Bool {
        var socketAddress = socketAddress(address, port)
        return withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func connect(_ fd: Int32, _ address: String, _ port: UInt16) -> Bool {
        var socketAddress = socketAddress(address, port)
        return withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    static func sendAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            let sent = rest.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            rest = rest.dropFirst(sent)
        }
        return true
    }
}

/// A worker host on a network of its own: a network namespace joined to this one by a veth
/// pair (`10.231.N.1` here, `10.231.N.2` there), the database relayed to `10.231.N.1`, and
/// `mp-cluster-demo worker` running inside it. Its only way to the database is that link.
struct NetworkHost {
    let name: String
    /// The namespace's name (`ip netns`).
    let namespace: String
    /// The veth end in this namespace (taken down to cut the host off).
    let link: String
    /// This namespace's address on the link.
    let gateway: String
    let relay: ChildProcess<LoopbackRelay>
    /// The worker program's pid (it is this process's child).
    let worker: pid_t
    /// Where the worker's output goes.
    let output: String

    static var ipTool: String? {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { access($0, X_OK) == 0 }
    }

    /// The demo program, built beside the test bundle (`swift build` builds it).
    static var demoProgram: String { builtProgram("mp-cluster-demo") }

    /// What these tests need from the machine, or the error that says what is missing.
    static func requirements() throws -> String {
        guard getuid() == 0 else {
            throw TestSetupError(
                "network namespaces and veth links need root (CAP_NET_ADMIN): run the tests as root")
        }
        guard let ip = ipTool else {
            throw TestSetupError("the `ip` tool is needed (apt-get install -y iproute2)")
        }
        guard access(demoProgram, X_OK) == 0 else {
            throw TestSetupError("\(demoProgram) is missing: `swift build` builds it")
        }
        return ip
    }

    /// Makes host number `index` and starts its worker on `schema`.
    static func start(
        index: Int, schema: String, databasePort: UInt16, concurrency: Int = 1
    ) async throws -> NetworkHost {
        let ip = try requirements()
        let tag = "\(getpid() % 100_000)\(index)"
        let namespace = "mp-test-\(tag)"
        let link = "mph\(tag)"
        let inside = "mpn\(tag)"
        let subnet = "10.231.\((Int(getpid()) * 4 + index) % 250)"
        let gateway = "\(subnet).1"
        for command in [
            ["netns", "add", namespace],
            ["link", "add", link, "type", "veth", "peer", "name", inside],
            ["link", "set", inside, "netns", namespace],
            ["address", "add", "\(gateway)/30", "dev", link],
            ["link", "set", link, "up"],
            ["-n", namespace, "address", "add", "\(subnet).2/30", "dev", inside],
            ["-n", namespace, "link", "set", inside, "up"],
            ["-n", namespace, "link", "set", "lo", "up"],
        ] {
            try await run([ip] + command)
        }
        let relay = try ChildProcess(LoopbackRelay(address: gateway, port: databasePort))
        try await relay.start()
        try await waitUntilListening(gateway, databasePort)
        let output = "/tmp/mp-network-host-\(getpid())-\(index).log"
        let url = "postgres://postgres@\(gateway):\(databasePort)/postgres"
        let worker = try spawn(
            [
                ip, "netns", "exec", namespace, demoProgram, "worker", "host-\(index)", "--schema", schema,
                "--concurrency", "\(concurrency)",
            ], environment: ["MP_POSTGRES_URL=\(url)"], output: output)
        return NetworkHost(
            name: "host-\(index)", namespace: namespace, link: link, gateway: gateway, relay: relay,
            worker: worker, output: output)
    }

    /// Cuts the host off (its link down: packets are dropped, connections stall) or joins it again.
    func setConnected(_ connected: Bool) async throws {
        try await Self.run([try Self.requirements(), "link", "set", link, connected ? "up" : "down"])
    }

    /// Sends `signal` to the worker program and reaps it: its exit status (128 + signal when a
    /// signal ended it), or `nil` when it outlived `limit` (then it is SIGKILLed and reaped).
    func stopWorker(_ signal: Int32 = SIGTERM, within limit: Duration = .seconds(60)) async -> Int32? {
        kill(worker, signal)
        let deadline = ContinuousClock.now + limit
        var status: Int32 = 0
        while ContinuousClock.now < deadline {
            let reaped = waitpid(worker, &status, WNOHANG)
            if reaped == worker {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            if reaped < 0 && errno != EINTR { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        kill(worker, SIGKILL)
        while waitpid(worker, &status, 0) < 0 && errno == EINTR {}
        return nil
    }

    /// Stops the worker (if still running), the relay and the namespace, whose deletion takes the
    /// veth pair with it.
    func tearDown() async {
        _ = await stopWorker(SIGKILL, within: .seconds(10))
        relay.kill()
        _ = try? await relay.join()
        if let ip = Self.ipTool { try? await Self.run([ip, "netns", "delete", namespace]) }
        unlink(output)
    }

    /// The worker program's output so far.
    var printed: String { fileText(output) }

    /// Runs a command in a child process and fails unless it exits 0.
    static func run(_ arguments: [String]) async throws {
        let child = try ChildProcess(ShellCommand(arguments: arguments))
        try await child.start()
        let status = try await child.value
        _ = try await child.join()
        guard status == 0 else {
            throw TestSetupError("\(arguments.joined(separator: " ")) exited \(status)")
        }
    }

    /// Polls until `address:port` accepts a connection (the relay has bound it).
    static func waitUntilListening(_ address: String, _ port: UInt16) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let connected = fd >= 0 && LoopbackRelay.connect(fd, address, port)
            if fd >= 0 { close(fd) }
            if connected { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSetupError("the relay on \(address):\(port) never listened")
    }

    /// Starts a program with output to a file, its signals unblocked and at their defaults (the
    /// test's threads block some, and a spawned program inherits the mask).
    static func spawn(_ arguments: [String], environment: [String], output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = arguments.map { strdup($0) } + [nil]
        var envp = environment.map { strdup($0) }
        var index = 0
        while let entry = environ[index] {
            if !String(cString: entry).hasPrefix("MP_POSTGRES_URL=") { envp.append(strdup(entry)) }
            index += 1
        }
        envp.append(nil)
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestSetupError("posix_spawn \(arguments[0]): \(rc)") }
        return pid
    }
}
