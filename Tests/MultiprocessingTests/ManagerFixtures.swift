@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the Manager tests (internal, at file scope, so a child can find them by name).

/// Counts atomically in every kind of container, `rounds` times; returns how many items of the
/// shared claim set it won.
struct ContainerCounter: ProcessTask {
    var counters: SharedDictionary<String, Int>
    var arrivals: SharedList<Int>
    var claims: SharedSet<Int>
    var namespace: SharedNamespace
    var id: Int
    var rounds: Int
    func run() async throws -> Int {
        var won = 0
        for round in 0..<rounds {
            try counters.update("total", default: 0) { $0 += 1 }
            try counters.update("child-\(id)", default: 0) { $0 += 1 }
            if try claims.insert(round) { won += 1 }
            try namespace.update("total", default: 0) { $0 += 1 }
            try arrivals.update(at: 0) { $0 += 1 }
        }
        try arrivals.append(id)
        return won
    }
}

/// CPython's manager example: the child sets `l[0] = 100`.
struct FirstElementSetter: ProcessTask {
    var list: SharedList<Int>
    func run() async throws -> [Int] {
        list[0] = 100
        return try list.snapshot
    }
}

/// Reads a namespace in a child: its attributes, and what asking for the wrong type says.
struct NamespaceReader: ProcessTask {
    var namespace: SharedNamespace
    func run() async throws -> [String] {
        let x = try namespace.value("x", as: Int.self)
        let label: String? = namespace.label
        var mismatch = "none"
        do {
            _ = try namespace.value("x", as: String.self)
        } catch {
            mismatch = "\(error)"
        }
        try namespace.set("fromChild", to: [1.5, 2.5])
        return ["\(x ?? -1)", label ?? "nil", mismatch]
    }
}

/// Overwrites a few keys and one list slot many times (forcing compactions of a small log),
/// waits for every writer, then returns what it sees.
struct Overwriter: ProcessTask {
    struct View: Codable, Equatable {
        var dictionary: [Int: String]
        var list: [Int]
    }
    var dictionary: SharedDictionary<Int, String>
    var list: SharedList<Int>
    var finished: SharedValue<Int>
    var id: Int
    var writers: Int
    var rounds: Int
    func run() async throws -> View {
        for round in 0..<rounds {
            try dictionary.updateValue("\(id)-\(round)", forKey: id * 100 + round % 10)
            try list.update(at: id) { $0 += 1 }
        }
        finished.add(1)
        while finished.load() < writers { try await Task.sleep(for: .milliseconds(1)) }
        return View(dictionary: try dictionary.snapshot, list: try list.snapshot)
    }
}

/// Takes a dictionary's lock inside `update`, says so, and sleeps there (to be killed).
struct StuckWriter: ProcessTask {
    var dictionary: SharedDictionary<String, Int>
    var flag: SharedMemory
    func run() async throws {
        try dictionary.update("stuck") { (_: inout Int?) -> Void in
            flag.baseAddress.storeBytes(of: 1, as: Int.self)
            while true { sleep(10) }
        }
    }
}

/// Stops inside a write at `stage` (a test hook of debug builds), says so, and sleeps there
/// (to be killed): with its entry written but not published, or half-way through a compaction.
struct InterruptedWriter: ProcessTask {
    var dictionary: SharedDictionary<Int, Int>
    var flag: SharedMemory
    var compacting: Bool
    func run() async throws {
        let flag = flag
        let stage: LogTestHooks.Stage = compacting ? .compacting : .entryWritten
        LogTestHooks.pause = { reached in
            guard reached == stage else { return }
            flag.baseAddress.storeBytes(of: 1, as: Int.self)
            while true { sleep(10) }
        }
        // Overwrite one key until the log fills and a compaction starts.
        var round = 0
        while true {
            try dictionary.updateValue(round, forKey: -1)
            round += 1
        }
    }
}

/// Counts this process's memfds before making containers, while a child uses them, and after
/// they are released.
struct ManagerLeakProbe: ProcessTask {
    func run() async throws -> [Int] {
        let before = openMemfdCount()
        var during = -1
        do {
            let manager = Manager(capacity: 1 << 20)
            let counters = try manager.dictionary([String: Int].self)
            let arrivals = try manager.list([0])
            let claims = try manager.set(Set<Int>.self)
            let namespace = try manager.namespace()
            let child = try ChildProcess(
                ContainerCounter(
                    counters: counters, arrivals: arrivals, claims: claims, namespace: namespace, id: 0,
                    rounds: 10))
            try await child.start()
            _ = try await child.value
            during = openMemfdCount()
        }
        return [before, during, openMemfdCount()]
    }
}

/// A key type of the tests' own.
struct ManagerPoint: Codable, Hashable, Sendable {
    var x: Int
    var y: Int
}

/// Sends `value` through the codec as a child would receive it (its descriptors duplicated)
/// and decodes it as `type`.
func handleRoundTrip<T: Encodable, U: Decodable>(_ value: T, as type: U.Type) throws -> U {
    let outgoing = DescriptorTransfer.Outgoing()
    var encoder = BinaryEncoder()
    encoder.userInfo[DescriptorTransfer.key] = outgoing
    let bytes = try encoder.encode(value)
    let incoming = DescriptorTransfer.Incoming(outgoing.descriptors.map { dup($0) })
    defer { incoming.closeUnclaimed() }
    var decoder = BinaryDecoder()
    decoder.userInfo[DescriptorTransfer.key] = incoming
    return try decoder.decode(U.self, from: bytes)
}
