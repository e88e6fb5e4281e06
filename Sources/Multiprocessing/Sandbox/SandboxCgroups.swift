#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The cgroups of one sandbox: a memory and a pids controller directory made beside this
/// process's own cgroup (v2 where the controller is delegated to it, else v1), holding the
/// init (which joins them before it forks the task: v1 ones itself, v2 ones moved by the
/// supervisor) and everything under it. Made (while the init builds its view) and read by the
/// supervisor, which stays outside;
/// removed by the parent once it has reaped the supervisor (``SandboxLink/finish(supervisor:)``),
/// or by the next supervisor when that parent is gone.
struct SandboxCgroups: Sendable {
    /// A controller in use: its version and the sandbox's directory.
    struct Controller: Sendable {
        var version: SandboxLimitMechanism
        var directory: String
    }

    var memory: Controller?
    var pids: Controller?

    /// The directories made, to remove at the end.
    var directories: [String] {
        var result: [String] = []
        for controller in [memory, pids].compactMap({ $0 }) where !result.contains(controller.directory) {
            result.append(controller.directory)
        }
        return result
    }

    /// The prefix of every directory the library makes; the rest of the name is the pid of the
    /// supervisor that made it, or the pid of the parent that made it and a number
    /// (``SandboxDirectStart``).
    static let prefix = "swift-multiprocessing-"

    /// Makes the directories for `memory` bytes and `processes` tasks in `hierarchies`, where
    /// this process may; a controller it cannot use is simply absent (the caller falls back to
    /// rlimits).
    static func make(
        memory: Int?, processes: Int?, in hierarchies: [Hierarchy], name suffix: String = String(getpid())
    ) -> SandboxCgroups {
        var cgroups = SandboxCgroups()
        guard memory != nil || processes != nil else { return cgroups }
        let name = prefix + suffix
        if let memory {
            cgroups.memory = make(name, in: hierarchies, controller: "memory") { controller in
                switch controller.version {
                case .cgroupV2:
                    guard writeFile("\(memory)", to: controller.directory + "/memory.max") else {
                        return false
                    }
                    _ = writeFile("0", to: controller.directory + "/memory.swap.max")
                default:
                    guard writeFile("\(memory)", to: controller.directory + "/memory.limit_in_bytes") else {
                        return false
                    }
                    _ = writeFile("\(memory)", to: controller.directory + "/memory.memsw.limit_in_bytes")
                }
                return true
            }
        }
        if let processes {
            cgroups.pids = make(name, in: hierarchies, controller: "pids") { controller in
                writeFile("\(processes)", to: controller.directory + "/pids.max")
            }
        }
        return cgroups
    }

    /// Moves `pid` into every directory. `nil`, or why not.
    func attach(_ pid: Int32) -> String? {
        for directory in directories where !Self.writeFile("\(pid)", to: directory + "/cgroup.procs") {
            return SandboxProgress.reason("writing \(directory)/cgroup.procs", errno)
        }
        return nil
    }

    /// These cgroups, but only the controllers of `version`.
    func only(_ version: SandboxLimitMechanism) -> SandboxCgroups {
        var result = SandboxCgroups()
        if memory?.version == version { result.memory = memory }
        if pids?.version == version { result.pids = pids }
        return result
    }

    /// The v1 hierarchies that hold a memory or pids cgroup, opened while this
    /// machine's tree is still visible: the sandbox's init joins its v1 cgroups through them
    /// once its own view hides `/sys` (``joinWithCallingThread(through:)``).
    static func openHierarchies(_ hierarchies: [Hierarchy]) -> [(directory: String, fd: Int32)] {
        hierarchies.compactMap { hierarchy in
            guard hierarchy.version == .cgroupV1,
                hierarchy.controllers.contains("memory") || hierarchy.controllers.contains("pids")
            else { return nil }
            let fd = open(hierarchy.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return fd >= 0 ? (hierarchy.directory, fd) : nil
        }
    }

    /// Moves the calling thread into the v1 directories (writes 0 to their `tasks` files,
    /// reached through `roots`, ``openHierarchies(_:)``): for a single-threaded process (the
    /// sandbox's init), the whole process. Moving one thread of one's own skips the lock a move
    /// of a whole process takes, and with it the RCU grace period that lock waits for: ~0.1 ms
    /// instead of 1 to 16 ms (a scheduler tick or more on a busy machine). Those that fail are
    /// dropped, with their restriction and why.
    mutating func joinWithCallingThread(through roots: [(directory: String, fd: Int32)])
        -> [(SandboxRestriction, String)]
    {
        func join(_ controller: Controller) -> String? {
            guard
                let root = roots.first(where: { controller.directory.hasPrefix($0.directory + "/") })
            else { return "no open hierarchy holds \(controller.directory)" }
            let tasks = String(controller.directory.dropFirst(root.directory.count + 1)) + "/tasks"
            let fd = openat(root.fd, tasks, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                return SandboxProgress.reason("opening \(controller.directory)/tasks", errno)
            }
            defer { close(fd) }
            guard write(fd, "0", 1) == 1 else {
                return SandboxProgress.reason("writing \(controller.directory)/tasks", errno)
            }
            return nil
        }
        var failures: [(SandboxRestriction, String)] = []
        if let memory, memory.version == .cgroupV1, let failure = join(memory) {
            failures.append((.memoryLimit, failure))
            self.memory = nil
        }
        if let pids, pids.version == .cgroupV1, let failure = join(pids) {
            failures.append((.processLimit, failure))
            self.pids = nil
        }
        return failures
    }

    /// Moves the calling process, single-threaded and still seeing this machine's `/sys`, into
    /// every directory (a direct start's task): writes 0 to `tasks` (v1: the calling thread, so
    /// no RCU grace period is waited for) or `cgroup.procs` (v2). Those that fail are dropped,
    /// with their restriction and why.
    mutating func joinWithCallingProcess() -> [(SandboxRestriction, String)] {
        func join(_ controller: Controller) -> String? {
            let file = controller.directory + (controller.version == .cgroupV1 ? "/tasks" : "/cgroup.procs")
            return Self.writeFile("0", to: file) ? nil : SandboxProgress.reason("writing \(file)", errno)
        }
        var failures: [(SandboxRestriction, String)] = []
        if let memory, let failure = join(memory) {
            failures.append((.memoryLimit, failure))
            self.memory = nil
        }
        if let pids, let failure = join(pids) {
            failures.append((.processLimit, failure))
            self.pids = nil
        }
        return failures
    }

    /// None.
    init() {}

    /// How the supervisor describes these cgroups to the init: a byte 1, then for each
    /// controller its initial (`m`, `p`), its version (1, 2), its directory and a NUL.
    var word: [UInt8] {
        var bytes: [UInt8] = [1]
        for (initial, controller) in [(UInt8(ascii: "m"), memory), (UInt8(ascii: "p"), pids)] {
            guard let controller else { continue }
            bytes +=
                [initial, controller.version == .cgroupV2 ? 2 : 1] + Array(controller.directory.utf8) + [0]
        }
        return bytes
    }

    /// The cgroups ``word`` describes; `nil` for anything else (no word: the supervisor is gone
    /// or failed the start).
    init?(word: [UInt8]) {
        guard word.first == 1 else { return nil }
        for entry in word.dropFirst().split(separator: 0) {
            guard entry.count > 2, let version = entry.dropFirst().first else { return nil }
            let controller = Controller(
                version: version == 2 ? .cgroupV2 : .cgroupV1,
                directory: String(decoding: entry.dropFirst(2), as: UTF8.self))
            switch entry.first {
            case UInt8(ascii: "m"): memory = controller
            case UInt8(ascii: "p"): pids = controller
            default: return nil
            }
        }
    }

    /// How many times the memory controller's OOM killer killed a process of the sandbox.
    var memoryKills: Int {
        guard let memory else { return 0 }
        let file = memory.version == .cgroupV2 ? "/memory.events" : "/memory.oom_control"
        return Self.counter("oom_kill", in: memory.directory + file)
    }

    /// How many times a fork or thread creation was refused at the pids limit.
    var processLimitHits: Int {
        guard let pids else { return 0 }
        return Self.counter("max", in: pids.directory + "/pids.events")
    }

    /// Removes the directories, waiting a little for the last processes to leave them.
    func remove() { Self.remove(directories) }

    static func remove(_ directories: [String]) {
        for directory in directories {
            for _ in 0..<500 {
                if rmdir(directory) == 0 || errno == ENOENT { break }
                guard errno == EBUSY else { break }
                usleep(2000)
            }
        }
    }

    /// The directories a supervisor with pid `supervisor` makes in `hierarchies` (whether or not
    /// it made them).
    static func directories(of supervisor: Int32, in hierarchies: [Hierarchy]) -> [String] {
        hierarchies.filter { $0.controllers.contains("memory") || $0.controllers.contains("pids") }.map {
            $0.directory + "/" + prefix + String(supervisor)
        }
    }

    /// Removes directories of supervisors that are gone (killed before they could clean up),
    /// beside this process's cgroups.
    static func removeStale(in hierarchies: [Hierarchy]) {
        for hierarchy in hierarchies
        where hierarchy.controllers.contains("memory") || hierarchy.controllers.contains("pids") {
            guard let dir = opendir(hierarchy.directory) else { continue }
            var stale: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                // "<supervisor>" or "<parent>-<number>".
                let owner = name.dropFirst(prefix.count).prefix { $0 != "-" }
                guard name.hasPrefix(prefix), let pid = Int32(owner) else { continue }
                if kill(pid, 0) != 0 && errno == ESRCH { stale.append(hierarchy.directory + "/" + name) }
            }
            closedir(dir)
            for directory in stale { _ = rmdir(directory) }
        }
    }

    // MARK: Finding the hierarchies

    /// One mounted hierarchy and this process's cgroup in it.
    struct Hierarchy: Sendable {
        var version: SandboxLimitMechanism
        var controllers: [String]
        /// This process's cgroup directory in it.
        var directory: String

        /// Every hierarchy this process is in, from /proc/self/cgroup and /proc/self/mountinfo.
        static func ofThisProcess() -> [Hierarchy] {
            guard let membership = readText("/proc/self/cgroup"),
                let mounts = readText("/proc/self/mountinfo")
            else { return [] }
            var result: [Hierarchy] = []
            for line in mounts.split(separator: "\n") {
                let halves = line.split(separator: " - ", maxSplits: 1)
                guard halves.count == 2 else { continue }
                let fields = halves[0].split(separator: " ")
                let tail = halves[1].split(separator: " ")
                guard fields.count >= 5, tail.count >= 3 else { continue }
                let root = String(fields[3])
                let mountPoint = String(fields[4])
                let options = tail[2].split(separator: ",").map(String.init)
                let path: String?
                let version: SandboxLimitMechanism
                let controllers: [String]
                if tail[0] == "cgroup2" {
                    version = .cgroupV2
                    path = membership.split(separator: "\n").first { $0.hasPrefix("0::") }.map {
                        String($0.dropFirst(3))
                    }
                    controllers =
                        readText(mountPoint + (path ?? "") + "/cgroup.subtree_control")?.split(
                            whereSeparator: { $0 == " " || $0 == "\n" }
                        ).map(String.init) ?? []
                } else if tail[0] == "cgroup" {
                    version = .cgroupV1
                    controllers = options.filter { $0 == "memory" || $0 == "pids" }
                    guard let name = controllers.first else { continue }
                    path =
                        membership.split(separator: "\n").compactMap { entry -> String? in
                            let parts = entry.split(
                                separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                            guard parts.count == 3, parts[1].split(separator: ",").contains(Substring(name))
                            else {
                                return nil
                            }
                            return String(parts[2])
                        }.first
                } else {
                    continue
                }
                guard var path else { continue }
                // A hierarchy mounted from one of its cgroups (in a container) shows paths from there.
                if root != "/", path.hasPrefix(root) { path = String(path.dropFirst(root.count)) }
                if path == "/" { path = "" }
                result.append(
                    Hierarchy(version: version, controllers: controllers, directory: mountPoint + path))
            }
            return result
        }
    }

    private static func make(
        _ name: String, in hierarchies: [Hierarchy], controller: String, configure: (Controller) -> Bool
    ) -> Controller? {
        // v2 first (one directory for both controllers), then v1.
        for version in [SandboxLimitMechanism.cgroupV2, .cgroupV1] {
            for hierarchy in hierarchies
            where hierarchy.version == version && hierarchy.controllers.contains(controller) {
                let directory = hierarchy.directory + "/" + name
                if mkdir(directory, 0o755) != 0 && errno != EEXIST { continue }
                let made = Controller(version: version, directory: directory)
                if configure(made) { return made }
                _ = rmdir(directory)
            }
        }
        return nil
    }

    private static func counter(_ key: String, in path: String) -> Int {
        guard let text = readText(path) else { return 0 }
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return Int(parts[1]) ?? 0 }
        }
        return 0
    }

    static func writeFile(_ text: String, to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result += chunk[0..<n]
        }
        return String(decoding: result, as: UTF8.self)
    }
}
