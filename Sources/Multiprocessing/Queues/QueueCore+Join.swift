import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Closing, task accounting for `JoinableQueue`, and reaping items held by dead consumers.
extension QueueCore {
    /// Marks the queue closed for every process and wakes every sleeper.
    func close() {
        lock()
        word(QueueLayout.closed).store(1)
        _ = notEmptySequence.add(1)
        _ = notFullSequence.add(1)
        unlock()
        notEmptySequence.wakeAll()
        notFullSequence.wakeAll()
    }

    /// Marks one item done; wakes joiners when none is left. In a queue that records holders,
    /// the item is this process's oldest, and a process that holds none may not mark one.
    func taskDone() throws(QueueError) {
        if let holders { return try taskDone(holders) }
        lock()
        let left = unfinishedWord.load()
        guard left > 0 else {
            unlock()
            throw .taskDoneTooManyTimes
        }
        unfinishedWord.store(left - 1)
        var wake = false
        if left == 1 && word(QueueLayout.joinWaiters).load() > 0 {
            _ = joinSequence.add(1)
            wake = true
        }
        unlock()
        if wake { joinSequence.wakeAll() }
    }

    func taskDone(_ holders: QueueHolders) throws(QueueError) {
        let me = ConsumerIdentity.current
        lock()
        var writes = holders.journal()
        guard let slot = holders.slot(of: me, hint: slotHint.load(ordering: .relaxed)),
            holders.finishOldest(slot, &writes)
        else {
            unlock()
            throw .taskDoneTooManyTimes
        }
        slotHint.store(slot, ordering: .relaxed)
        holders.countDone(&writes)
        var next = state
        next.unfinished = next.unfinished > 0 ? next.unfinished - 1 : 0
        commit(next, writes)
        var wake = false
        if next.unfinished == 0 && word(QueueLayout.joinWaiters).load() > 0 {
            _ = joinSequence.add(1)
            wake = true
        }
        unlock()
        if wake { joinSequence.wakeAll() }
    }

    /// Waits until every item put has been marked done. In a queue that records holders, checks
    /// on arrival and every ``holderCheckInterval`` whether a holder died (a dead process
    /// wakes nobody) and hands its items back (``reapDeadHolders()``).
    func join(_ wait: QueueWait) throws(QueueError) {
        var registered = false
        var nextCheck: Int64 = 0
        let waiters = word(QueueLayout.joinWaiters)
        while true {
            if holders != nil && WaitDeadline.now >= nextCheck {
                nextCheck = WaitDeadline.now + Self.holderCheckInterval
                reapDeadHolders()
            }
            lock()
            if registered {
                Self.unregister(waiters)
                registered = false
            }
            if unfinishedWord.load() == 0 {
                unlock()
                return
            }
            if let failure = Self.stop(wait) {
                unlock()
                throw failure
            }
            _ = waiters.add(1)
            registered = true
            let sequence = joinSequence.load()
            unlock()
            sleep(
                on: joinSequence, ifEqualTo: sequence, wait,
                slice: holders == nil ? nil : Self.holderCheckInterval)
        }
    }

    /// Finds the holders that died with items taken and not done, and hands their items back:
    /// put back for other consumers, or counted done and recorded for a report
    /// (``AbandonedItemPolicy``). Called outside the lock; reads `/proc` only for slots that
    /// hold items.
    func reapDeadHolders() {
        guard let holders else { return }
        let me = ConsumerIdentity.current
        for slot in 0..<holders.highWater {
            let holder = holders.holder(slot)
            guard holder.pid != 0, holder != me, holders.held(slot) > 0, holder.isGone else { continue }
            lock()
            var requeued = 0
            var abandoned = 0
            if holders.holder(slot) == holder {
                var record: QueueHolders.Record? = nil
                while true {
                    var writes = holders.journal()
                    let step = holders.reclaimStep(slot, closed: isClosed, record: &record, &writes)
                    var next = state
                    next.unfinished = next.unfinished > step.abandoned ? next.unfinished - step.abandoned : 0
                    commit(next, writes)
                    if step.requeued { requeued += 1 }
                    abandoned += Int(clamping: step.abandoned)
                    if step.finished { break }
                }
            }
            if requeued > 0 { _ = notEmptySequence.add(1) }
            let wakeJoiners = joinersToWake()
            unlock()
            if requeued > 0 { notEmptySequence.wakeAll() }
            if wakeJoiners { joinSequence.wakeAll() }
            telemetry.deadConsumer(pid: holder.pid, requeued: requeued, abandoned: abandoned)
        }
    }

    /// ``reapDeadHolders()``, unless this process did it less than ``holderCheckInterval`` ago.
    func reapDeadHoldersIfDue() {
        let now = WaitDeadline.now
        let due = nextHolderCheck.load(ordering: .relaxed)
        guard now >= due,
            nextHolderCheck.compareExchange(
                expected: due, desired: now + Self.holderCheckInterval, ordering: .relaxed
            ).exchanged
        else { return }
        reapDeadHolders()
    }

    /// The items abandoned by dead holders since `cursor`, if any.
    func abandoned(since cursor: QueueHolders.ReportCursor) -> (AbandonedItems, QueueHolders.ReportCursor)? {
        guard let holders else { return nil }
        lock()
        defer { unlock() }
        return holders.abandoned(since: cursor)
    }
}
