/// A small hand-written byte format for what a sandbox's processes tell each other and the
/// parent. Not `Codable`: each child is a fresh process, and the codec's first use in a process
/// (type metadata, witness tables) costs a few hundred microseconds of every sandboxed start.
struct SandboxBytes {
    private(set) var bytes: [UInt8] = []
    private var position = 0

    init() {}
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func put(_ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
    mutating func put(_ value: Int32) { put(UInt64(UInt32(bitPattern: value))) }
    mutating func put(_ value: UInt32) { put(UInt64(value)) }
    mutating func put(_ value: String) {
        let utf8 = Array(value.utf8)
        put(UInt64(utf8.count))
        bytes += utf8
    }
    mutating func put(_ value: String?) {
        put(UInt64(value == nil ? 0 : 1))
        if let value { put(value) }
    }

    mutating func u64() -> UInt64? {
        guard position + 8 <= bytes.count else { return nil }
        var value: UInt64 = 0
        for i in (0..<8).reversed() { value = value << 8 | UInt64(bytes[position + i]) }
        position += 8
        return value
    }
    mutating func u32() -> UInt32? { u64().flatMap { UInt32(exactly: $0) } }
    mutating func i32() -> Int32? { u32().map { Int32(bitPattern: $0) } }
    mutating func int() -> Int? { u64().flatMap { Int(exactly: $0) } }
    mutating func string() -> String? {
        guard let count = int(), count <= bytes.count - position else { return nil }
        defer { position += count }
        return String(decoding: bytes[position..<(position + count)], as: UTF8.self)
    }
    mutating func optionalString() -> String?? {
        guard let present = u64() else { return nil }
        return present == 0 ? .some(nil) : string().map { .some($0) }
    }
}

extension SandboxLimitMechanism {
    /// The mechanism's number in ``SandboxBytes`` (0 is "none").
    var code: UInt64 {
        switch self {
        case .cgroupV2: 1
        case .cgroupV1: 2
        case .resourceLimit: 3
        }
    }

    init?(code: UInt64) {
        switch code {
        case 1: self = .cgroupV2
        case 2: self = .cgroupV1
        case 3: self = .resourceLimit
        default: return nil
        }
    }
}

extension SandboxReport {
    var bytes: [UInt8] {
        var out = SandboxBytes()
        out.put(UInt64(applied.count))
        for restriction in applied { out.put(restriction.rawValue) }
        out.put(UInt64(notApplied.count))
        for (restriction, reason) in notApplied {
            out.put(restriction.rawValue)
            out.put(reason)
        }
        out.put(memoryLimitMechanism?.code ?? 0)
        out.put(processLimitMechanism?.code ?? 0)
        out.put(UInt64(landlockABI.map { $0 + 1 } ?? 0))
        out.put(userID)
        out.put(groupID)
        out.put(UInt64(cgroupDirectories.count))
        for directory in cgroupDirectories { out.put(directory) }
        return out.bytes
    }

    init?(bytes: [UInt8]) {
        var input = SandboxBytes(bytes)
        self.init()
        guard let count = input.int() else { return nil }
        for _ in 0..<count {
            guard let name = input.string(), let restriction = SandboxRestriction(rawValue: name) else {
                return nil
            }
            applied.append(restriction)
        }
        guard let skipped = input.int() else { return nil }
        for _ in 0..<skipped {
            guard let name = input.string(), let restriction = SandboxRestriction(rawValue: name),
                let reason = input.string()
            else { return nil }
            notApplied[restriction] = reason
        }
        guard let memory = input.u64(), let processes = input.u64(), let abi = input.int(),
            let uid = input.u32(), let gid = input.u32(), let directories = input.int()
        else { return nil }
        memoryLimitMechanism = SandboxLimitMechanism(code: memory)
        processLimitMechanism = SandboxLimitMechanism(code: processes)
        landlockABI = abi == 0 ? nil : abi - 1
        userID = uid
        groupID = gid
        for _ in 0..<directories {
            guard let directory = input.string() else { return nil }
            cgroupDirectories.append(directory)
        }
    }
}

extension SandboxExit {
    var bytes: [UInt8] {
        var out = SandboxBytes()
        switch verdict {
        case nil: out.put(UInt64(0))
        case .cpuLimit: out.put(UInt64(1))
        case .memoryLimit: out.put(UInt64(2))
        case .processLimit: out.put(UInt64(3))
        case .fileSizeLimit: out.put(UInt64(4))
        case .systemCallDenied(let name):
            out.put(UInt64(5))
            out.put(name)
        case .timeLimit: out.put(UInt64(6))
        }
        out.put(status)
        out.put(cpuMicroseconds)
        out.put(UInt64(cgroupsRemoved ? 1 : 0))
        return out.bytes
    }

    init?(bytes: [UInt8]) {
        var input = SandboxBytes(bytes)
        guard let tag = input.u64() else { return nil }
        switch tag {
        case 0: verdict = nil
        case 1: verdict = .cpuLimit
        case 2: verdict = .memoryLimit
        case 3: verdict = .processLimit
        case 4: verdict = .fileSizeLimit
        case 5:
            guard let name = input.string() else { return nil }
            verdict = .systemCallDenied(name: name)
        case 6: verdict = .timeLimit
        default: return nil
        }
        guard let status = input.i32(), let cpu = input.u64(), let removed = input.u64() else { return nil }
        self.status = status
        cpuMicroseconds = cpu
        cgroupsRemoved = removed != 0
    }
}

extension SandboxBytes {
    mutating func put(_ value: Bool) { put(UInt64(value ? 1 : 0)) }
    mutating func put(_ values: [String]) {
        put(UInt64(values.count))
        for value in values { put(value) }
    }
    mutating func put(_ value: Int?) { put(value.map { UInt64(bitPattern: Int64($0)) &+ 1 } ?? 0) }

    mutating func bool() -> Bool? { u64().map { $0 != 0 } }
    mutating func strings() -> [String]? {
        guard let count = int(), count <= bytes.count else { return nil }
        var values: [String] = []
        for _ in 0..<count {
            guard let value = string() else { return nil }
            values.append(value)
        }
        return values
    }
    mutating func optionalInt() -> Int?? {
        guard let raw = u64() else { return nil }
        return raw == 0 ? .some(nil) : .some(Int(Int64(bitPattern: raw &- 1)))
    }
}

extension SandboxPlan {
    /// The plan as it travels to the child.
    var bytes: [UInt8] {
        var out = SandboxBytes()
        let s = sandbox
        out.put(s.network == .none)
        out.put(s.isolatesFileSystem)
        out.put(s.readablePaths)
        out.put(s.writablePaths)
        out.put(s.temporaryDirectorySize)
        out.put(s.sharesNamedSharedMemory)
        out.put(s.isolatesProcesses)
        out.put(s.isolatesIPC)
        out.put(s.hostname)
        let limits = s.limits
        // Microseconds, rounded up: a limit never shrinks on the way.
        out.put(
            limits.cpuTime.map {
                Int($0.components.seconds) * 1_000_000
                    + Int(($0.components.attoseconds + 999_999_999_999) / 1_000_000_000_000)
            })
        out.put(limits.memory)
        out.put(limits.processes)
        out.put(limits.openFiles)
        out.put(limits.fileSize)
        out.put(limits.allowsCoreDumps)
        out.put(s.systemCalls != nil)
        out.put(s.systemCalls?.allowsNewSockets ?? true)
        out.put(s.systemCalls?.allowsExec ?? true)
        out.put(s.systemCalls?.additionalDenials ?? [])
        out.put(s.usesLandlock)
        out.put(s.user.uid)
        out.put(s.user.gid)
        out.put(s.enforcement == .bestEffort)
        out.put(program != nil)
        if let program {
            out.put(program.executable)
            out.put(program.arguments)
            out.put(program.environment)
            out.put(program.workingDirectory)
        }
        out.put(runningFiles)
        out.put(UInt64(cgroupHierarchies.count))
        for hierarchy in cgroupHierarchies {
            out.put(hierarchy.version.code)
            out.put(hierarchy.controllers)
            out.put(hierarchy.directory)
        }
        for filter in [notifyingFilter, killingFilter] {
            out.put(UInt64(filter.count))
            for word in filter { out.put(word) }
        }
        switch view {
        case .none: out.put(UInt64(0))
        case .build: out.put(UInt64(1))
        case .enter(let visible):
            out.put(UInt64(2))
            out.put(visible)
        }
        out.put(premadeNetwork)
        out.put(direct)
        out.put(cgroupsFollow)
        return out.bytes
    }

    init?(bytes: [UInt8]) {
        var input = SandboxBytes(bytes)
        guard let noNetwork = input.bool(), let isolatesFileSystem = input.bool(),
            let readable = input.strings(), let writable = input.strings(), let tmp = input.optionalInt(),
            let sharesMemory = input.bool(), let isolatesProcesses = input.bool(),
            let isolatesIPC = input.bool(),
            let hostname = input.optionalString(), let cpu = input.optionalInt(),
            let memory = input.optionalInt(),
            let processes = input.optionalInt(), let openFiles = input.optionalInt(),
            let fileSize = input.optionalInt(), let cores = input.bool(), let filtered = input.bool(),
            let sockets = input.bool(), let exec = input.bool(), let denials = input.strings(),
            let landlock = input.bool(), let uid = input.u32(), let gid = input.u32(),
            let bestEffort = input.bool(),
            let hasProgram = input.bool()
        else { return nil }
        var program: SandboxProgramPlan?
        if hasProgram {
            guard let executable = input.string(), let arguments = input.strings(),
                let environment = input.strings(), let directory = input.optionalString()
            else { return nil }
            program = SandboxProgramPlan(
                executable: executable, arguments: arguments, environment: environment,
                workingDirectory: directory)
        }
        guard let running = input.strings(), let hierarchyCount = input.int(), hierarchyCount < 64 else {
            return nil
        }
        var hierarchies: [SandboxCgroups.Hierarchy] = []
        for _ in 0..<hierarchyCount {
            guard let code = input.u64(), let version = SandboxLimitMechanism(code: code),
                let controllers = input.strings(), let directory = input.string()
            else { return nil }
            hierarchies.append(.init(version: version, controllers: controllers, directory: directory))
        }
        var filters: [[UInt64]] = []
        for _ in 0..<2 {
            guard let count = input.int(), count <= bytes.count / 8 else { return nil }
            var words: [UInt64] = []
            words.reserveCapacity(count)
            for _ in 0..<count {
                guard let word = input.u64() else { return nil }
                words.append(word)
            }
            filters.append(words)
        }
        let limits = SandboxLimits(
            cpuTime: cpu.map { .microseconds($0) }, memory: memory, processes: processes,
            openFiles: openFiles,
            fileSize: fileSize, allowsCoreDumps: cores)
        let sandbox = Sandbox(
            network: noNetwork ? .none : .host, isolatesFileSystem: isolatesFileSystem,
            readablePaths: readable,
            writablePaths: writable, temporaryDirectorySize: tmp, sharesNamedSharedMemory: sharesMemory,
            isolatesProcesses: isolatesProcesses, isolatesIPC: isolatesIPC, hostname: hostname,
            limits: limits,
            systemCalls: filtered
                ? SystemCallFilter(allowsNewSockets: sockets, allowsExec: exec, additionalDenials: denials)
                : nil,
            usesLandlock: landlock, user: SandboxUser(uid: uid, gid: gid),
            enforcement: bestEffort ? .bestEffort : .required)
        guard let viewCode = input.u64() else { return nil }
        var view = View.none
        if viewCode == 1 { view = .build }
        if viewCode == 2 {
            guard let visible = input.visible() else { return nil }
            view = .enter(visible)
        }
        guard let premadeNetwork = input.bool(), let direct = input.bool(), let cgroupsFollow = input.bool()
        else { return nil }
        self.init(
            sandbox: sandbox, program: program, runningFiles: running, cgroupHierarchies: hierarchies,
            notifyingFilter: filters[0], killingFilter: filters[1], view: view,
            premadeNetwork: premadeNetwork,
            direct: direct, cgroupsFollow: cgroupsFollow)
    }
}

extension SandboxBytes {
    mutating func put(_ visible: [SandboxMounts.Visible]) {
        put(UInt64(visible.count))
        for entry in visible {
            put(entry.path)
            put(entry.writable)
            put(entry.isDirectory)
        }
    }

    mutating func visible() -> [SandboxMounts.Visible]? {
        guard let count = int(), count <= bytes.count else { return nil }
        var result: [SandboxMounts.Visible] = []
        for _ in 0..<count {
            guard let path = string(), let writable = bool(), let isDirectory = bool() else { return nil }
            result.append(SandboxMounts.Visible(path: path, writable: writable, isDirectory: isDirectory))
        }
        return result
    }
}
