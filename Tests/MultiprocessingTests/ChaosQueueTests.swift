import Testing

@testable import Multiprocessing

/// Producers and consumers SIGKILLed at random points of `put`, `get` and `taskDone`, with every
/// item accounted for afterwards. Bounded: a fixed number of kills per test, bounded waits.
@Suite("Chaos: queues", .serialized)
struct ChaosQueueTests {
    /// Kills per test.
    static let kills = 30

    @Test(
        "consumers SIGKILLed at random points of get and taskDone: every item done once or reported, join ends",
        arguments: [AbandonedItemPolicy.report, .requeue(maxDeliveries: 1000)])
    func consumersKilled(policy: AbandonedItemPolicy) async throws {
        let limit = 3_000_000
        let queue = try JoinableQueue<Int>(unfinishedItemsOfDeadConsumers: policy)
        let done = try SharedArray<Int>(repeating: 0, count: limit, locked: false)
        let progress = try SharedArray<Int>(repeating: 0, count: 2 + Self.kills, locked: false)
        // Enough waiting that the consumers rarely find the queue empty, and more fed until the
        // kills are over (however slowly this machine starts processes).
        let prefilled = 200_000
        for i in 0..<prefilled { try queue.putNowait(i) }
        let feeder = Task { () -> Int in
            for i in prefilled..<limit {
                do {
                    try await queue.put(i)
                } catch {
                    return i
                }
            }
            return limit
        }
        var started = 0
        func consumer() throws -> ChildProcess<ChaosConsumer> {
            let child = try ChildProcess(
                ChaosConsumer(queue: queue, done: done, progress: progress, slot: started))
            try child.start()
            started += 1
            return child
        }
        var consumers = [try consumer(), try consumer()]
        var slots = [0, 1]
        var random = SplitMix(seed: policy.requeues ? 11 : 7)
        var killed: Set<Int32> = []
        for _ in 0..<Self.kills {
            let victim = Int(random.next() % 2)
            // Working, then killed wherever it is: mostly inside get or taskDone.
            guard
                try await waitForSlot(
                    progress, slots[victim], atLeast: 1, unless: { queue.unfinishedCount == 0 })
            else { break }
            try await Task.sleep(for: .microseconds(Int(random.next() % 3000)))
            killed.insert(try #require(consumers[victim].pid))
            consumers[victim].kill()
            _ = try await consumers[victim].join()
            slots[victim] = started
            consumers[victim] = try consumer()
        }
        feeder.cancel()
        let total = await feeder.value
        let report = try await joinReporting(queue, timeout: .seconds(60))
        queue.close()
        for consumer in consumers { try await consumer.value }

        let holders = try #require(queue.queue.core.holders)
        let abandoned = report?.count ?? 0
        print(
            "chaos: queues: \(killed.count) consumers killed (\(policy)): \(total) items, "
                + "\(holders.doneTotal) done, \(queue.requeuedCount) put back, \(abandoned) reported")
        let counts = (0..<total).map { done.load(at: $0) }
        #expect(queue.unfinishedCount == 0)
        #expect(queue.isEmpty)
        #expect(abandoned == queue.abandonedCount)
        // Each item was marked done once, or counted finished for its dead consumer.
        #expect(holders.doneTotal + abandoned == total)
        if policy.requeues {
            #expect(report == nil, "nothing may be lost: \(report.map { "\($0)" } ?? "")")
            #expect(counts.allSatisfy { $0 >= 1 }, "an item was never done")
            // A second run of an item needs a consumer killed holding it, put back once.
            let repeated = counts.reduce(0) { $0 + $1 - 1 }
            #expect(repeated <= queue.requeuedCount)
            #expect(queue.requeuedCount <= Self.kills)
        } else {
            let report = report ?? AbandonedItems(count: 0, consumers: [])
            // Each kill lands inside a get/taskDone loop, about half of the time holding an item.
            #expect(killed.count < 10 || report.count > 0, "no consumer died holding an item?")
            #expect(counts.allSatisfy { $0 <= 1 }, "an item was delivered twice")
            // Never done: abandoned. Flagged, but killed before taskDone: abandoned too.
            #expect(counts.filter { $0 == 0 }.count <= abandoned)
            #expect(counts.filter { $0 == 1 }.count >= holders.doneTotal)
            #expect(abandoned <= Self.kills, "a consumer holds one item at a time")
            #expect(report.consumers.allSatisfy { killed.contains($0.pid) && $0.reason == .consumerDied })
            #expect(report.consumers.reduce(0) { $0 + $1.items } == abandoned)
        }
    }

    @Test(
        "producers and consumers SIGKILLed mid-put and mid-get (JoinableQueue): every item put is done or reported",
        arguments: [AbandonedItemPolicy.report, .requeue(maxDeliveries: 1000)])
    func producersAndConsumersKilled(policy: AbandonedItemPolicy) async throws {
        let perProducer = 100_000
        let queue = try JoinableQueue<Int>(capacity: 1000, unfinishedItemsOfDeadConsumers: policy)
        let done = try SharedArray<Int>(repeating: 0, count: 2 * perProducer, locked: false)
        let attempted = try SharedArray<Int>(repeating: 0, count: 2, locked: false)
        let progress = try SharedArray<Int>(repeating: 0, count: 2 + Self.kills, locked: false)
        var started = 0
        func consumer() throws -> ChildProcess<ChaosConsumer> {
            let child = try ChildProcess(
                ChaosConsumer(queue: queue, done: done, progress: progress, slot: started))
            try child.start()
            started += 1
            return child
        }
        // A producer resumes after the item its killed predecessor was putting (uncertain).
        var resumeAt = [0, 0]
        func producer(_ slot: Int) throws -> ChildProcess<ChaosProducer> {
            let from = resumeAt[slot]
            attempted.store(from, at: slot)
            let child = try ChildProcess(
                ChaosProducer(
                    queue: queue, attempted: attempted, slot: slot, first: slot * perProducer, from: from,
                    count: perProducer))
            try child.start()
            return child
        }
        var consumers = [try consumer(), try consumer()]
        var consumerSlots = [0, 1]
        var producers = [try producer(0), try producer(1)]
        var uncertain: Set<Int> = []
        var consumerKills = 0
        var producerKills = 0
        var random = SplitMix(seed: policy.requeues ? 5 : 3)
        for kill in 0..<Self.kills {
            let victim = Int(random.next() % 2)
            if kill % 2 == 0, attempted.load(at: victim) < perProducer - 1000 {
                let before = attempted.load(at: victim)
                try await waitForSlot(attempted, victim, atLeast: before + 1)
                try await Task.sleep(for: .microseconds(Int(random.next() % 3000)))
                producers[victim].kill()
                _ = try await producers[victim].join()
                producerKills += 1
                // Killed while putting item `reached - 1` (or just after): it may be in or not.
                let reached = attempted.load(at: victim)
                uncertain.insert(victim * perProducer + reached - 1)
                resumeAt[victim] = reached
                producers[victim] = try producer(victim)
            } else {
                // Working (unless everything is put and taken: then no more kills).
                let finished = {
                    attempted.load(at: 0) == perProducer && attempted.load(at: 1) == perProducer
                        && queue.isEmpty
                }
                guard try await waitForSlot(progress, consumerSlots[victim], atLeast: 1, unless: finished)
                else {
                    break
                }
                try await Task.sleep(for: .microseconds(Int(random.next() % 3000)))
                consumers[victim].kill()
                _ = try await consumers[victim].join()
                consumerKills += 1
                consumerSlots[victim] = started
                consumers[victim] = try consumer()
            }
        }
        for producer in producers { try await producer.value }
        let report = try await joinReporting(queue, timeout: .seconds(60))
        queue.close()
        for consumer in consumers { try await consumer.value }

        let holders = try #require(queue.queue.core.holders)
        let put = Int(QueueState(at: queue.queue.core.memory.baseAddress + QueueLayout.state).putCount)
        let abandoned = report?.count ?? 0
        print(
            "chaos: queues: \(producerKills) producers and \(consumerKills) consumers killed "
                + "(\(policy)): \(put) items put, \(holders.doneTotal) done, \(queue.requeuedCount) put back, "
                + "\(abandoned) reported")
        #expect(queue.unfinishedCount == 0)
        #expect(holders.doneTotal + abandoned == put, "every item put: done once, or reported")
        let counts = (0..<(2 * perProducer)).map { done.load(at: $0) }
        let certain = (0..<(2 * perProducer)).filter { !uncertain.contains($0) }
        #expect(put >= certain.count && put <= certain.count + uncertain.count)
        if policy.requeues {
            #expect(report == nil)
            #expect(certain.allSatisfy { counts[$0] >= 1 }, "an item put was never done")
        } else {
            #expect(counts.allSatisfy { $0 <= 1 }, "an item was delivered twice")
            #expect(certain.filter { counts[$0] == 0 }.count <= abandoned)
            #expect(abandoned <= consumerKills)
        }
    }

    @Test(
        "producers and consumers SIGKILLed mid-put and mid-get (ProcessQueue): no item twice, one lost per consumer killed at most"
    )
    func plainQueueKilled() async throws {
        let perProducer = 300_000
        let queue = try ProcessQueue<Int>(capacity: 1000)
        let taken = try SharedArray<Int>(repeating: 0, count: 2 * perProducer, locked: false)
        let attempted = try SharedArray<Int>(repeating: 0, count: 2, locked: false)
        let progress = try SharedArray<Int>(repeating: 0, count: 2 + Self.kills, locked: false)
        var started = 0
        func consumer() throws -> ChildProcess<CountingConsumer> {
            let child = try ChildProcess(
                CountingConsumer(queue: queue, taken: taken, progress: progress, slot: started))
            try child.start()
            started += 1
            return child
        }
        var resumeAt = [0, 0]
        func producer(_ slot: Int) throws -> ChildProcess<CountingProducer> {
            let from = resumeAt[slot]
            attempted.store(from, at: slot)
            let child = try ChildProcess(
                CountingProducer(
                    queue: queue, attempted: attempted, slot: slot, first: slot * perProducer, from: from,
                    count: perProducer))
            try child.start()
            return child
        }
        var consumers = [try consumer(), try consumer()]
        var consumerSlots = [0, 1]
        var producers = [try producer(0), try producer(1)]
        var uncertain: Set<Int> = []
        var consumerKills = 0
        var producerKills = 0
        var random = SplitMix(seed: 9)
        for kill in 0..<Self.kills {
            let victim = Int(random.next() % 2)
            if kill % 2 == 0, attempted.load(at: victim) < perProducer - 1000 {
                let before = attempted.load(at: victim)
                try await waitForSlot(attempted, victim, atLeast: before + 1)
                try await Task.sleep(for: .microseconds(Int(random.next() % 3000)))
                producers[victim].kill()
                _ = try await producers[victim].join()
                producerKills += 1
                let reached = attempted.load(at: victim)
                uncertain.insert(victim * perProducer + reached - 1)
                resumeAt[victim] = reached
                producers[victim] = try producer(victim)
            } else {
                // Working (unless everything is put and taken: then no more kills).
                let finished = {
                    attempted.load(at: 0) == perProducer && attempted.load(at: 1) == perProducer
                        && queue.isEmpty
                }
                guard try await waitForSlot(progress, consumerSlots[victim], atLeast: 1, unless: finished)
                else {
                    break
                }
                try await Task.sleep(for: .microseconds(Int(random.next() % 3000)))
                consumers[victim].kill()
                _ = try await consumers[victim].join()
                consumerKills += 1
                consumerSlots[victim] = started
                consumers[victim] = try consumer()
            }
        }
        for producer in producers { try await producer.value }
        queue.close()
        for consumer in consumers { try await consumer.value }

        let put = Int(QueueState(at: queue.core.memory.baseAddress + QueueLayout.state).putCount)
        let counts = (0..<(2 * perProducer)).map { taken.load(at: $0) }
        let received = counts.reduce(0, +)
        print(
            "chaos: queues: \(producerKills) producers and \(consumerKills) consumers killed "
                + "(ProcessQueue): \(put) items put, \(received) received")
        let certain = (0..<(2 * perProducer)).filter { !uncertain.contains($0) }
        #expect(counts.allSatisfy { $0 <= 1 }, "an item was taken twice")
        #expect(put >= certain.count && put <= certain.count + uncertain.count)
        // A consumer killed between its take and its log loses that one item, no more.
        #expect(received <= put && received >= put - consumerKills)
        #expect(certain.filter { counts[$0] == 0 }.count <= consumerKills)
        #expect(queue.isEmpty)
    }
}

/// Waits until `array[index]` is at least `value`; `false` if `finished` says first that it
/// never will.
@discardableResult
func waitForSlot(
    _ array: SharedArray<Int>, _ index: Int, atLeast value: Int, unless finished: () -> Bool = { false },
    seconds: Double = 30
) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while array.load(at: index) < value {
        if finished() { return false }
        if ContinuousClock.now > deadline { throw FlagTimeout() }
        try await Task.sleep(for: .microseconds(200))
    }
    return true
}

/// Joins `queue`, returning what it reports abandoned (or `nil`); any other error is thrown.
func joinReporting<Element>(_ queue: JoinableQueue<Element>, timeout: Duration) async throws(QueueError)
    -> AbandonedItems?
{
    do {
        try await queue.join(timeout: timeout)
        return nil
    } catch {
        guard case .abandoned(let lost) = error else { throw error }
        return lost
    }
}
