import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Manager")
struct ManagerTests {
    @Test("dictionary: every operation")
    func dictionaryOperations() throws {
        let dictionary = try Manager().dictionary(["a": 1, "b": 2])
        #expect(try dictionary.count == 2)
        #expect(try dictionary.value(forKey: "a") == 1)
        #expect(try dictionary.value(forKey: "z") == nil)
        #expect(try dictionary.value(forKey: "z", default: 7) == 7)
        #expect(try dictionary.contains("b"))
        #expect(try !dictionary.contains("z"))
        #expect(try dictionary.updateValue(10, forKey: "a") == 1)
        #expect(try dictionary.updateValue(3, forKey: "c") == nil)
        #expect(try dictionary.removeValue(forKey: "b") == 2)
        #expect(try dictionary.removeValue(forKey: "b") == nil)
        #expect(try dictionary.snapshot == ["a": 10, "c": 3])
        #expect(try Set(dictionary.keys) == ["a", "c"])
        #expect(try dictionary.values.sorted() == [3, 10])
        dictionary["d"] = 4
        #expect(dictionary["d"] == 4)
        dictionary["d"] = nil
        #expect(dictionary["d"] == nil)
        try dictionary.update(with: ["x": 1, "y": 2, "a": 0])
        #expect(try dictionary.snapshot == ["a": 0, "c": 3, "x": 1, "y": 2])
        let doubled = try dictionary.update("x") { value -> Int in
            value = value.map { $0 * 2 }
            return value ?? -1
        }
        #expect(doubled == 2)
        try dictionary.update("y") { $0 = nil }
        try dictionary.update("new", default: 40) { $0 += 2 }
        #expect(try dictionary.snapshot == ["a": 0, "c": 3, "x": 2, "new": 42])
        try dictionary.update(keys: ["a", "c", "missing"]) { entries in
            entries["a"]! += 5
            entries["c"] = nil
            entries["missing"] = 1
        }
        #expect(try dictionary.snapshot == ["a": 5, "x": 2, "new": 42, "missing": 1])
        let removed = try dictionary.modify { entries in
            entries = entries.filter { $0.value > 1 }
            return 1
        }
        #expect(removed == 1)
        #expect(try dictionary.snapshot == ["a": 5, "x": 2, "new": 42])
        var seen: [String: Int] = [:]
        for (key, value) in dictionary { seen[key] = value }
        #expect(seen == ["a": 5, "x": 2, "new": 42])
        try dictionary.removeAll()
        #expect(try dictionary.isEmpty)
        #expect(try dictionary.snapshot == [:])
        let typed = try Manager().dictionary([Int: [String]].self)
        try typed.updateValue(["x", "y"], forKey: -3)
        #expect(try typed.value(forKey: -3) == ["x", "y"])
    }

    @Test("list: every operation, and bad positions as typed errors")
    func listOperations() throws {
        let list = try Manager().list([1, 2, 3])
        #expect(try list.count == 3)
        #expect(try list.element(at: 1) == 2)
        #expect(list[2] == 3)
        list[0] = 100
        #expect(try list.snapshot == [100, 2, 3])
        try list.append(4)
        try list.append(contentsOf: [5, 6])
        try list.insert(0, at: 0)
        try list.insert(7, at: 7)
        #expect(try list.snapshot == [0, 100, 2, 3, 4, 5, 6, 7])
        #expect(try list.remove(at: 1) == 100)
        #expect(try list.replaceElement(at: 0, with: 1) == 0)
        #expect(try list.firstIndex(of: 5) == 4)
        #expect(try list.firstIndex(of: 99) == nil)
        #expect(try list.firstIndex { $0 > 4 } == 4)
        #expect(try list.contains(6))
        #expect(try list.removeFirst(6))
        #expect(try !list.removeFirst(6))
        #expect(try list.removeFirst { $0 % 2 == 0 } == 2)
        #expect(try list.popLast() == 7)
        #expect(try list.first == 1)
        #expect(try list.last == 5)
        #expect(
            try list.update(at: 1) { value -> Int in
                value *= 10
                return value
            } == 30)
        try list.modify { $0.sort(by: >) }
        #expect(try list.snapshot == [30, 5, 4, 1])
        #expect(Array(list) == [30, 5, 4, 1])
        #expect(throws: ManagerError.indexOutOfRange(index: 4, count: 4)) { try list.element(at: 4) }
        #expect(throws: ManagerError.indexOutOfRange(index: -1, count: 4)) { try list.remove(at: -1) }
        #expect(throws: ManagerError.indexOutOfRange(index: 6, count: 4)) { try list.insert(9, at: 6) }
        #expect(throws: ManagerError.indexOutOfRange(index: 4, count: 4)) {
            try list.replaceElement(at: 4, with: 0)
        }
        #expect(throws: ManagerError.indexOutOfRange(index: 9, count: 4)) {
            try list.update(at: 9) { $0 += 1 }
        }
        #expect(try list.snapshot == [30, 5, 4, 1])
        try list.removeAll()
        #expect(try list.isEmpty)
        #expect(try list.popLast() == nil)
        #expect(try list.first == nil)
        // Many elements at once travel in chunks.
        let long = try SharedList(Array(0..<5000), capacity: 1 << 20)
        #expect(try long.snapshot == Array(0..<5000))
        let strings = try Manager().list([String].self)
        try strings.append("x")
        #expect(try strings.snapshot == ["x"])
    }

    @Test("set and namespace: every operation, and a namespace read as the wrong type")
    func setAndNamespace() throws {
        let manager = Manager()
        let set = try manager.set([1, 2])
        #expect(try set.insert(3))
        #expect(try !set.insert(3))
        #expect(try set.remove(1))
        #expect(try !set.remove(1))
        #expect(try set.contains(2))
        try set.formUnion([5, 6, 2])
        try set.subtract([6, 7])
        #expect(try set.snapshot == [2, 3, 5])
        #expect(try set.count == 3)
        #expect(Set(set) == [2, 3, 5])
        try set.modify { $0 = $0.filter { $0 > 2 }.union([9]) }
        #expect(try set.snapshot == [3, 5, 9])
        try set.removeAll()
        #expect(try set.isEmpty)
        #expect(try manager.set(Set<String>.self).isEmpty)

        let namespace = try manager.namespace()
        namespace.x = 1
        namespace["label"] = "first"
        let x: Int? = namespace.x
        #expect(x == 1)
        #expect(try namespace.value("label", as: String.self) == "first")
        #expect(try namespace.value("absent", as: Int.self) == nil)
        #expect(throws: ManagerError.typeMismatch(name: "x", stored: "Swift.Int", requested: "Swift.String"))
        {
            try namespace.value("x", as: String.self)
        }
        #expect(throws: ManagerError.typeMismatch(name: "x", stored: "Swift.Int", requested: "Swift.Double"))
        {
            try namespace.update("x", as: Double.self) { $0 = 2 }
        }
        try namespace.set("x", to: "now a string")
        #expect(try namespace.value("x", as: String.self) == "now a string")
        try namespace.update("count", default: 0) { $0 += 5 }
        try namespace.update("count", as: Int.self) { $0! *= 2 }
        #expect(try namespace.value("count", as: Int.self) == 10)
        #expect(try namespace.names == ["count", "label", "x"])
        #expect(try namespace.count == 3)
        #expect(try namespace.contains("label"))
        #expect(try namespace.removeValue("label"))
        #expect(try !namespace.removeValue("label"))
        try namespace.removeAll()
        #expect(try namespace.names == [])
    }

    @Test("values of any Codable type and size, read back by another replica")
    func codableValues() throws {
        let dictionary = try SharedDictionary<ManagerPoint, [String: Double]>()
        try dictionary.updateValue(["weight": 0.5], forKey: ManagerPoint(x: 1, y: -2))
        let big = String(repeating: "é", count: 150_000)
        let list = try SharedList<String>(["small", big], capacity: 1 << 20)
        let otherDictionary = try handleRoundTrip(
            dictionary, as: SharedDictionary<ManagerPoint, [String: Double]>.self)
        let otherList = try handleRoundTrip(list, as: SharedList<String>.self)
        #expect(try otherDictionary.snapshot == [ManagerPoint(x: 1, y: -2): ["weight": 0.5]])
        #expect(try otherList.snapshot == ["small", big])
        try otherList.modify { $0.reverse() }
        #expect(try list.first == big)
    }

    @Test("capacities: limits, a full log throws and changes nothing")
    func capacity() throws {
        #expect(throws: ManagerError.invalidCapacity(16)) { try Manager(capacity: 16).list([Int].self) }
        #expect(throws: ManagerError.invalidCapacity(1 << 40)) { try SharedSet<Int>(capacity: 1 << 40) }
        let list = try SharedList<String>(capacity: 1001)
        #expect(list.capacity == 1008)
        let item = String(repeating: "x", count: 100)
        var added = 0
        var failure: ManagerError?
        while failure == nil {
            do {
                try list.append(item)
                added += 1
            } catch {
                failure = error
            }
        }
        guard case .capacityExceeded(let needed, let capacity) = failure else {
            Issue.record("expected capacityExceeded, got \(String(describing: failure))")
            return
        }
        #expect(capacity == 1008 && needed > capacity)
        #expect(added >= 8)
        #expect(try list.count == added)
        #expect(throws: ManagerError.self) { try list.insert(item, at: 0) }
        #expect(try list.snapshot == Array(repeating: item, count: added))
        // A removal still fits (the log compacts), and then there is room again.
        try list.removeAll()
        try list.append("small")
        #expect(try list.snapshot == ["small"])
        #expect(try SharedDictionary(["k": item], capacity: 256).value(forKey: "k") == item)
        #expect(throws: ManagerError.capacityExceeded(needed: 360, capacity: 256)) {
            try SharedDictionary(["k": item, "l": item, "m": item], capacity: 256)
        }
    }

    @Test("compaction: overwrites in a small log; replicas that miss compactions rebuild")
    func compactionInProcess() throws {
        let writer = try SharedDictionary<Int, String>(capacity: 512)
        let lagging = try handleRoundTrip(writer, as: SharedDictionary<Int, String>.self)
        let follower = try handleRoundTrip(writer, as: SharedDictionary<Int, String>.self)
        var expected: [Int: String] = [:]
        for round in 0..<2000 {
            let key = round % 7
            expected[key] = "value \(round)"
            try writer.updateValue("value \(round)", forKey: key)
            if round % 3 == 0 { #expect(try follower.value(forKey: key) == "value \(round)") }
        }
        #expect(writer.log.compactions > 50)
        #expect(try writer.snapshot == expected)
        #expect(try follower.snapshot == expected)
        #expect(try lagging.snapshot == expected)
        try lagging.removeValue(forKey: 3)
        expected[3] = nil
        #expect(try writer.snapshot == expected)
    }

    @Test("handles refuse to be decoded as another type or kind")
    func handleTypes() throws {
        let dictionary = try SharedDictionary<String, Int>()
        #expect(throws: (any Error).self) {
            try handleRoundTrip(dictionary, as: SharedDictionary<String, String>.self)
        }
        #expect(throws: (any Error).self) { try handleRoundTrip(dictionary, as: SharedNamespace.self) }
        let list = try SharedList<Int>()
        #expect(throws: (any Error).self) { try handleRoundTrip(list, as: SharedSet<Int>.self) }
        let same = try handleRoundTrip(list, as: SharedList<Int>.self)
        try same.append(1)
        #expect(try list.snapshot == [1])
    }

    @Test("three children count atomically in every kind of container; exact totals")
    func exactTotalsAcrossProcesses() async throws {
        let manager = Manager()
        let counters = try manager.dictionary([String: Int].self)
        let arrivals = try manager.list([0])
        let claims = try manager.set(Set<Int>.self)
        let namespace = try manager.namespace()
        let rounds = 1000
        let children = try (0..<3).map { id in
            try ChildProcess(
                ContainerCounter(
                    counters: counters, arrivals: arrivals, claims: claims, namespace: namespace, id: id,
                    rounds: rounds),
                startMethod: id == 2 ? .forkserver : .spawn)
        }
        for child in children { try await child.start() }
        var won = 0
        for child in children { won += try await child.value }
        #expect(try counters.value(forKey: "total") == 3 * rounds)
        for id in 0..<3 { #expect(try counters.value(forKey: "child-\(id)") == rounds) }
        #expect(won == rounds)
        #expect(try claims.snapshot == Set(0..<rounds))
        #expect(try namespace.value("total", as: Int.self) == 3 * rounds)
        let final = try arrivals.snapshot
        #expect(final.first == 3 * rounds)
        #expect(final.dropFirst().sorted() == [0, 1, 2])
    }

    @Test("a child changes list [1, 2, 3] to [100, 2, 3]", arguments: [StartMethod.spawn, .forkserver])
    func childChangesList(method: StartMethod) async throws {
        let list = try Manager().list([1, 2, 3])
        let child = try ChildProcess(FirstElementSetter(list: list), startMethod: method)
        try await child.start()
        #expect(try await child.value == [100, 2, 3])
        #expect(try list.snapshot == [100, 2, 3])
    }

    @Test("a namespace read by a child: typed values, a typed mismatch")
    func namespaceInChild() async throws {
        let namespace = try Manager().namespace()
        namespace.x = 42
        namespace.label = "hello"
        let child = try ChildProcess(NamespaceReader(namespace: namespace), startMethod: .forkserver)
        try await child.start()
        let seen = try await child.value
        #expect(seen[0] == "42" && seen[1] == "hello")
        #expect(
            seen[2]
                == "\(ManagerError.typeMismatch(name: "x", stored: "Swift.Int", requested: "Swift.String"))")
        #expect(try namespace.value("fromChild", as: [Double].self) == [1.5, 2.5])
    }

    @Test("compaction across processes: every process ends with the same, right contents")
    func compactionAcrossProcesses() async throws {
        let dictionary = try SharedDictionary<Int, String>(capacity: 2048)
        let list = try SharedList([0, 0, 0], capacity: 2048)
        let finished = try SharedValue(0)
        let rounds = 2000
        let children = try (0..<3).map { id in
            try ChildProcess(
                Overwriter(
                    dictionary: dictionary, list: list, finished: finished, id: id, writers: 3, rounds: rounds
                ),
                startMethod: id == 1 ? .forkserver : .spawn)
        }
        for child in children { try await child.start() }
        var views: [Overwriter.View] = []
        for child in children { views.append(try await child.value) }
        var expected: [Int: String] = [:]
        for id in 0..<3 {
            for round in (rounds - 10)..<rounds { expected[id * 100 + round % 10] = "\(id)-\(round)" }
        }
        let mine = Overwriter.View(dictionary: try dictionary.snapshot, list: try list.snapshot)
        #expect(mine == Overwriter.View(dictionary: expected, list: [rounds, rounds, rounds]))
        #expect(views == [mine, mine, mine])
        #expect(dictionary.log.compactions > 10)
        #expect(list.log.compactions > 10)
    }

    @Test("a writer SIGKILLed holding the lock: reads never wait, the next writer recovers")
    func writerKilledHoldingLock() async throws {
        let dictionary = try SharedDictionary(["a": 1])
        let flag = try SharedMemory(size: 8)
        let writer = try ChildProcess(StuckWriter(dictionary: dictionary, flag: flag))
        try await writer.start()
        try await waitForFlag(flag)
        // The lock is held, and a writer of this process waits for it: reads go on regardless.
        // On a Dispatch thread: a cooperative one pinned until the kill below could leave this
        // test's own steps, or another test's, with no thread to run on (a hang).
        let blocked = Task { try await onThread { try dictionary.updateValue(2, forKey: "b") } }
        try await Task.sleep(for: .milliseconds(20))
        let readsDone = try SharedValue(0)
        let reads = Task.detached {
            for _ in 0..<1000 { #expect(try dictionary.value(forKey: "a") == 1) }
            readsDone.store(1)
            return try dictionary.snapshot
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while readsDone.load() == 0 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(readsDone.load() == 1, "reads waited for a writer")
        writer.kill()
        _ = try await writer.join()
        #expect(try await blocked.value == nil)
        #expect(try await reads.value == ["a": 1])
        #expect(dictionary.log.ownerDeaths == 1)
        try dictionary.update("a") { $0! += 1 }
        #expect(try dictionary.snapshot == ["a": 2, "b": 2])
    }

    @Test(
        "a writer SIGKILLed after writing its entry, or mid-compaction: nothing half-done shows",
        arguments: [false, true])
    func writerKilledMidWrite(compacting: Bool) async throws {
        let dictionary = try SharedDictionary<Int, Int>(capacity: 1024)
        for key in 0..<5 { try dictionary.updateValue(key * 10, forKey: key) }
        let before = try dictionary.snapshot
        let compactionsBefore = dictionary.log.compactions
        let flag = try SharedMemory(size: 8)
        let writer = try ChildProcess(
            InterruptedWriter(dictionary: dictionary, flag: flag, compacting: compacting))
        try await writer.start()
        try await waitForFlag(flag)
        let seen = try dictionary.snapshot
        #expect(seen.filter { $0.key != -1 } == before)
        if !compacting { #expect(seen[-1] == nil) }
        writer.kill()
        _ = try await writer.join()
        try dictionary.updateValue(5, forKey: 99)
        try dictionary.updateValue(6, forKey: 99)
        var expected = before
        expected[99] = 6
        let after = try dictionary.snapshot
        #expect(after.filter { $0.key != -1 } == expected)
        #expect(after[-1] == seen[-1])
        #expect(dictionary.log.ownerDeaths == 1)
        if compacting { #expect(dictionary.log.compactions == compactionsBefore + 1) }
        // Another process rebuilds the same contents from the log.
        let other = try handleRoundTrip(dictionary, as: SharedDictionary<Int, Int>.self)
        #expect(try other.snapshot == after)
    }

    @Test("containers leave no memfds behind once released")
    func noLeaks() async throws {
        let probe = try ChildProcess(ManagerLeakProbe())
        try await probe.start()
        let counts = try await probe.value
        #expect(counts.count == 3)
        #expect(counts[1] == counts[0] + 4, "memfds before, while held, after release: \(counts)")
        #expect(counts[2] == counts[0], "memfds before, while held, after release: \(counts)")
    }
}
