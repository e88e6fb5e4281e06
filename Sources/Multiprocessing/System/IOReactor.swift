import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One thread per process that waits for descriptors to become ready and wakes the Swift tasks
/// waiting on them, so that no cooperative thread ever blocks on a pipe, socket or process.
///
/// Linux uses epoll (registration from any thread is a single `epoll_ctl`, no wake-up of the
/// reactor); other systems use `poll` with a wake pipe.
final class IOReactor: Sendable {
    /// The process-wide reactor, started on first use. A start that fails (no descriptor for
    /// epoll, no thread) throws, and the next call tries again: running out of descriptors for
    /// a moment never leaves the process without a reactor.
    static func running() throws(SystemError) -> IOReactor { try slot.reactor() }

    /// The reactor if it has started, without starting one: enough to forget a descriptor.
    static var existing: IOReactor? { slot.published.load() }

    private static let initialSlot = Slot()
    /// Written only in a freshly forked child, while it has a single thread.
    nonisolated(unsafe) private static var afterForkSlot: Slot?
    private static var slot: Slot { afterForkSlot ?? initialSlot }

    /// In a child made by `fork`: the parent's reactor thread did not survive, and its epoll
    /// instance is shared with the parent. A fresh one starts on first use.
    static func resetAfterFork() { afterForkSlot = Slot() }

    /// In the parent before a `.fork`: makes what ``resetAfterFork()`` makes (see ``AfterFork``).
    static func prepareForFork() {
        _ = slot
        _ = Slot()
    }

    /// Where the reactor is published once started; starts are serialized so that only one
    /// epoll instance and thread are ever made.
    private final class Slot: Sendable {
        let published = AtomicLazyReference<IOReactor>()
        private let starting = Mutex(())

        func reactor() throws(SystemError) -> IOReactor {
            if let reactor = published.load() { return reactor }
            let started: Result<IOReactor, SystemError> = starting.withLock { _ in
                if let reactor = published.load() { return .success(reactor) }
                do throws(SystemError) {
                    return .success(published.storeIfNil(try IOReactor()))
                } catch {
                    return .failure(error)
                }
            }
            return try started.get()
        }
    }

    enum Interest: Sendable { case read, write }

    /// Why a wait ended without readiness.
    enum WaitError: Error {
        case cancelled, closed
        /// The kernel refused to watch the descriptor (`epoll_ctl`: out of memory or watches).
        case failed(SystemError)
    }

    /// A suspended task. Not a ``WaiterQueue``: readiness wakes every waiter of a descriptor at
    /// once (no value to hand to the first), and the lists must change under the same lock as
    /// the descriptor's epoll registration.
    private struct Waiter {
        let id: UInt64
        /// Resumed with `true` when ready, `false` when its deadline passed.
        let continuation: UnsafeContinuation<Bool, any Error>
        /// Its deadline on ``WaitTimer``, cancelled when it is resumed otherwise.
        var timer: WaitTimer.Token?

        func resume(_ result: Result<Bool, WaitError>) {
            WaitTimer.shared.cancel(timer)
            continuation.resume(with: result.mapError { $0 as any Error })
        }
    }

    private struct Entry {
        var readers: [Waiter] = []
        var writers: [Waiter] = []
        /// Persistent read handler, run on the reactor thread; returns `false` to stop watching.
        var handler: (@Sendable () -> Bool)?
        /// Events the kernel will currently report (one-shot: cleared when an event fires).
        var armed: UInt32 = 0
        var registered = false
        /// Bumped by each `watch`, so a handler that ended (and closed its descriptor) never
        /// clears the handler of a new descriptor that reused the number.
        var generation: UInt64 = 0

        var wanted: UInt32 {
            var mask: UInt32 = 0
            if !readers.isEmpty || handler != nil { mask |= IOReactor.readMask }
            if !writers.isEmpty { mask |= IOReactor.writeMask }
            return mask
        }
    }

    private struct State {
        var entries: [Int32: Entry] = [:]
        var nextID: UInt64 = 1
    }

    private let state = Mutex(State())

    #if os(Linux)
        static let readMask = UInt32(MP_EPOLLIN)
        static let writeMask = UInt32(MP_EPOLLOUT)
        private let epollFD: Int32
    #else
        static let readMask = UInt32(POLLIN)
        static let writeMask = UInt32(POLLOUT)
        private let wakeFDs: (Int32, Int32)
    #endif

    private init() throws(SystemError) {
        #if os(Linux)
            epollFD = try Syscall.epollCreate()
        #else
            let fds = try Syscall.pipe()
            try? Syscall.setNonBlocking(fds.0)  // Fails only for a closed descriptor.
            try? Syscall.setNonBlocking(fds.1)
            wakeFDs = fds
        #endif
        do {
            // `unowned`: the reactor is never freed once published; one that failed to start
            // must not be kept alive by a thread that does not exist.
            try OSThread.detach(name: "mp-reactor") { [unowned self] in self.run() }
        } catch {
            #if os(Linux)
                Syscall.close(epollFD)
            #else
                Syscall.close(wakeFDs.0)
                Syscall.close(wakeFDs.1)
            #endif
            throw error
        }
    }

    // MARK: Waiting

    /// Suspends until `fd` is ready for `interest` (or has hung up / failed, which the caller
    /// then sees from its next system call). Throws `WaitError.cancelled` when the task is
    /// cancelled and `.closed` when the descriptor is forgotten.
    func wait(_ fd: Int32, for interest: Interest, unless stop: @Sendable () -> Bool = { false })
        async throws(WaitError)
    {
        _ = try await wait(fd, for: interest, until: .never, unless: stop)
    }

    /// Waits like ``wait(_:for:unless:)`` but gives up after `timeout`; returns `false` on
    /// time-out.
    func wait(
        _ fd: Int32, for interest: Interest, timeout: Duration,
        unless stop: @escaping @Sendable () -> Bool = { false }
    ) async throws(WaitError) -> Bool {
        try await wait(fd, for: interest, until: WaitDeadline(after: timeout), unless: stop)
    }

    /// Waits until `fd` is ready (`true`) or `deadline` passes (`false`): the deadline is
    /// on ``WaitTimer``'s thread, not `Task.sleep` (no Dispatch timer, no extra task).
    private func wait(
        _ fd: Int32, for interest: Interest, until deadline: WaitDeadline, unless stop: @Sendable () -> Bool
    ) async throws(WaitError) -> Bool {
        if deadline.hasPassed { return false }
        let id = state.withLock { s -> UInt64 in
            defer { s.nextID += 1 }
            return s.nextID
        }
        do {
            return try await withTaskCancellationHandler {
                try await withUnsafeThrowingContinuation {
                    (continuation: UnsafeContinuation<Bool, any Error>) in
                    let refused = state.withLock { s -> SystemError? in
                        var waiter = Waiter(id: id, continuation: continuation)
                        // Under the lock, so the action finds the waiter (or nothing, if
                        // it was resumed already).
                        waiter.timer = WaitTimer.shared.schedule(at: deadline) { [self] in
                            finishWaiter(fd, id, with: .success(false))
                        }
                        var entry = s.entries[fd] ?? Entry()
                        switch interest {
                        case .read: entry.readers.append(waiter)
                        case .write: entry.writers.append(waiter)
                        }
                        let refused = arm(fd, &entry)
                        s.entries[fd] = entry
                        return refused
                    }
                    // Checked after registering, so a close or cancel that raced us is never missed.
                    if let refused {
                        finishWaiter(fd, id, with: .failure(.failed(refused)))
                    } else if stop() {
                        finishWaiter(fd, id, with: .failure(.closed))
                    } else if Task.isCancelled {
                        finishWaiter(fd, id, with: .failure(.cancelled))
                    }
                }
            } onCancel: {
                finishWaiter(fd, id, with: .failure(.cancelled))
            }
        } catch let error as WaitError {
            throw error
        } catch {
            throw .cancelled
        }
    }

    /// Runs `handler` on the reactor thread each time `fd` is readable, until it returns `false`
    /// or the descriptor is forgotten. The handler must not block.
    ///
    /// - Throws: when the kernel refuses to watch `fd` (out of memory or of epoll watches);
    ///   nothing is registered then.
    func watch(_ fd: Int32, handler: @escaping @Sendable () -> Bool) throws(SystemError) {
        let refused = state.withLock { s -> SystemError? in
            var entry = s.entries[fd] ?? Entry()
            let previous = entry.handler
            entry.handler = handler
            // Unique across entries: a fresh entry for a reused number must not match an old one.
            entry.generation = s.nextID
            s.nextID += 1
            if let refused = arm(fd, &entry) {
                entry.handler = previous
                if entry.readers.isEmpty && entry.writers.isEmpty && previous == nil {
                    s.entries.removeValue(forKey: fd)
                } else {
                    s.entries[fd] = entry
                }
                return refused
            }
            s.entries[fd] = entry
            return nil
        }
        if let refused { throw refused }
    }

    /// Removes every interest in `fd` and fails its waiters with `.closed`. Call before `close`.
    func forget(_ fd: Int32) {
        let entry = state.withLock { s -> Entry? in
            guard let entry = s.entries.removeValue(forKey: fd) else { return nil }
            #if os(Linux)
                if entry.registered { unregister(fd) }
            #endif
            return entry
        }
        guard let entry else { return }
        for waiter in entry.readers + entry.writers { waiter.resume(.failure(.closed)) }
    }

    /// Takes waiter `id` off `fd`'s lists, if it is still there, and resumes it with `result`.
    private func finishWaiter(_ fd: Int32, _ id: UInt64, with result: Result<Bool, WaitError>) {
        let waiter = state.withLock { s -> Waiter? in
            guard var entry = s.entries[fd] else { return nil }
            var found: Waiter?
            if let i = entry.readers.firstIndex(where: { $0.id == id }) {
                found = entry.readers.remove(at: i)
            } else if let i = entry.writers.firstIndex(where: { $0.id == id }) {
                found = entry.writers.remove(at: i)
            }
            if entry.readers.isEmpty && entry.writers.isEmpty && entry.handler == nil {
                // Nothing left: drop the entry, so a closed and reused number starts afresh.
                #if os(Linux)
                    if entry.registered { unregister(fd) }
                #endif
                s.entries.removeValue(forKey: fd)
            } else {
                s.entries[fd] = entry
            }
            return found
        }
        waiter?.resume(result)
    }

    #if os(Linux)
        /// Stops watching `fd`. Called under the lock. Its failures mean the kernel dropped it
        /// already (EBADF, ENOENT: closed), which is what was asked.
        private func unregister(_ fd: Int32) {
            try? Syscall.epollControl(epollFD, Int32(MP_EPOLL_CTL_DEL), fd, 0)
        }
    #endif

    /// Tells the kernel about the events `entry` wants, if that changed. Called under the lock.
    /// Returns the error when the kernel refused (the entry is then left unarmed).
    @discardableResult
    private func arm(_ fd: Int32, _ entry: inout Entry) -> SystemError? {
        let wanted = entry.wanted
        guard wanted != 0, wanted != entry.armed else { return nil }
        #if os(Linux)
            let events = wanted | UInt32(MP_EPOLLONESHOT)
            let add = Int32(MP_EPOLL_CTL_ADD)
            let mod = Int32(MP_EPOLL_CTL_MOD)
            // Re-armed if registered; added if the kernel does not know it (a closed and reused
            // number); modified if it was added behind the entry's back.
            if !entry.registered || (try? Syscall.epollControl(epollFD, mod, fd, events)) == nil {
                do throws(SystemError) {
                    do throws(SystemError) {
                        try Syscall.epollControl(epollFD, add, fd, events)
                    } catch  where error.errno == .fileExists {
                        try Syscall.epollControl(epollFD, mod, fd, events)
                    }
                } catch {
                    return error
                }
                entry.registered = true
            }
        #else
            var byte: UInt8 = 1
            _ = try? Syscall.write(wakeFDs.1, &byte, 1)  // A full pipe already wakes the loop.
        #endif
        entry.armed = wanted
        return nil
    }

    /// Hands readiness `events` of `fd` to whoever waits for them.
    private func dispatch(_ fd: Int32, events: UInt32) {
        let errorMask: UInt32
        #if os(Linux)
            errorMask = UInt32(MP_EPOLLHUP | MP_EPOLLERR | MP_EPOLLRDHUP)
        #else
            errorMask = UInt32(POLLHUP | POLLERR | POLLNVAL)
        #endif
        let readable = events & (Self.readMask | errorMask) != 0
        let writable = events & (Self.writeMask | errorMask) != 0
        let (ready, handler, generation) = state.withLock {
            s -> ([Waiter], (@Sendable () -> Bool)?, UInt64) in
            guard var entry = s.entries[fd] else { return ([], nil, 0) }
            entry.armed = 0
            var ready: [Waiter] = []
            if readable {
                ready += entry.readers
                entry.readers.removeAll()
            }
            if writable {
                ready += entry.writers
                entry.writers.removeAll()
            }
            s.entries[fd] = entry
            return (ready, readable ? entry.handler : nil, entry.generation)
        }
        for waiter in ready { waiter.resume(.success(true)) }
        if let handler {
            let keep = handler()
            state.withLock { s in
                guard var entry = s.entries[fd] else { return }
                if !keep && entry.generation == generation { entry.handler = nil }
                s.entries[fd] = entry
            }
        }
        let stranded = state.withLock { s -> ([Waiter], SystemError)? in
            guard var entry = s.entries[fd] else { return nil }
            guard let refused = arm(fd, &entry) else {
                s.entries[fd] = entry
                return nil
            }
            // Not watched any more: waiters that would never be woken fail instead.
            let waiters = entry.readers + entry.writers
            entry.readers.removeAll()
            entry.writers.removeAll()
            s.entries[fd] = entry
            return (waiters, refused)
        }
        if let (waiters, refused) = stranded {
            let error = WaitError.failed(refused)
            for waiter in waiters { waiter.resume(.failure(error)) }
        }
    }

    private func run() -> Never {
        #if os(Linux)
            var fds = [Int32](repeating: 0, count: 64)
            var events = [UInt32](repeating: 0, count: 64)
            while true {
                // Its failures (EBADF, EINVAL) mean a broken reactor: nothing could be woken.
                let n: Int32
                do throws(SystemError) {
                    n = try Syscall.epollWait(epollFD, &fds, &events, 64, milliseconds: -1)
                } catch {
                    preconditionFailure("the I/O reactor's \(error)")
                }
                for i in 0..<Int(n) { dispatch(fds[i], events: events[i]) }
            }
        #else
            while true {
                var fds = [pollfd(fd: wakeFDs.0, events: Int16(POLLIN), revents: 0)]
                state.withLock { s in
                    for (fd, entry) in s.entries where entry.armed != 0 {
                        fds.append(pollfd(fd: fd, events: Int16(truncatingIfNeeded: entry.armed), revents: 0))
                    }
                }
                if poll(&fds, nfds_t(fds.count), -1) < 0 { continue }  // EINTR (see Syscall).
                if fds[0].revents != 0 {
                    var drain = [UInt8](repeating: 0, count: 64)
                    while (try? Syscall.read(wakeFDs.0, &drain, 64)) ?? 0 > 0 {}
                }
                for p in fds.dropFirst() where p.revents != 0 {
                    dispatch(p.fd, events: UInt32(UInt16(bitPattern: p.revents)))
                }
            }
        #endif
    }
}
