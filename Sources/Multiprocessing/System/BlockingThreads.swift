import Dispatch
import Synchronization

/// A few threads of the library's own for the work an `async` function must not do on one of
/// Swift's cooperative threads: calls that block (starting a child waits for the launcher and
/// writes the whole task).
///
/// Not Dispatch's global queues: at the descriptor limit libdispatch traps when it cannot make
/// the descriptors its first worker threads need, and the library promises a typed error there.
/// The threads start on first use, at most ``limit`` of them, and live as long as the process;
/// work beyond that waits in line.
final class BlockingThreads: Sendable {
    /// The process's threads (a `.fork` child starts with a fresh set: see ``resetAfterFork()``).
    nonisolated(unsafe) private(set) static var shared = BlockingThreads(limit: 4)

    private struct State {
        var jobs: [(id: UInt64, body: @Sendable () -> Void)] = []
        var nextID: UInt64 = 0
        var threads = 0
        /// Threads waiting on `wake` that no job has claimed yet.
        var idle = 0
    }

    /// The most threads this set starts.
    let limit: Int
    private let state = Mutex(State())
    /// One signal per idle thread claimed by a job.
    private let wake = DispatchSemaphore(value: 0)

    init(limit: Int) {
        self.limit = limit
    }

    /// In a child made by `fork`: the threads did not survive, and a lock may have been held.
    static func resetAfterFork() {
        shared = BlockingThreads(limit: shared.limit)
    }

    /// In the parent before a `.fork`: makes what ``resetAfterFork()`` makes (see ``AfterFork``).
    static func prepareForFork() {
        _ = BlockingThreads(limit: shared.limit)
    }

    /// Runs `body` on one of the threads and returns (or throws) what it does.
    ///
    /// - Throws: what `body` throws; ``SystemError`` from `pthread_create` when no thread
    ///   exists and none can be started (`body` does not run then).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            do {
                try enqueue { continuation.resume(with: Result { try body() }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Runs `body` on one of the threads and returns what it returned or threw.
    ///
    /// - Throws: ``SystemError`` from `pthread_create` when no thread exists and none can be
    ///   started (`body` does not run then).
    func result<T: Sendable, Failure: Error>(
        of body: @escaping @Sendable () throws(Failure) -> T
    ) async throws(SystemError) -> Result<T, Failure> {
        let queued = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<Result<T, Failure>, SystemError>, Never>) in
            do throws(SystemError) {
                try enqueue {
                    continuation.resume(returning: .success(Result { () throws(Failure) in try body() }))
                }
            } catch {
                continuation.resume(returning: .failure(error))
            }
        }
        return try queued.get()
    }

    private func enqueue(_ body: @escaping @Sendable () -> Void) throws(SystemError) {
        enum Plan { case wakeOne, startOne, wait }
        let (id, plan) = state.withLock { state -> (UInt64, Plan) in
            let id = state.nextID
            state.nextID += 1
            state.jobs.append((id, body))
            if state.idle > 0 {
                state.idle -= 1
                return (id, .wakeOne)
            }
            guard state.threads < limit else { return (id, .wait) }  // A busy thread takes it next.
            state.threads += 1
            return (id, .startOne)
        }
        switch plan {
        case .wakeOne:
            wake.signal()
        case .wait:
            break
        case .startOne:
            do {
                try OSThread.detach(name: "mp-blocking") { [self] in work() }
            } catch {
                let stranded = state.withLock { state -> Bool in
                    state.threads -= 1
                    // With no thread at all, nobody would ever take the job: fail it instead.
                    guard state.threads == 0, let index = state.jobs.firstIndex(where: { $0.id == id })
                    else { return false }
                    state.jobs.remove(at: index)
                    return true
                }
                if stranded { throw error }
            }
        }
    }

    private func work() {
        while true {
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                guard !state.jobs.isEmpty else {
                    state.idle += 1
                    return nil
                }
                return state.jobs.removeFirst().body
            }
            if let job {
                job()
            } else {
                wake.wait()
            }
        }
    }
}
