import Multiprocessing
import Synchronization

/// Gathers a map's results by item index, reports progress, and opens ``done`` when every item
/// is in (or, failing fast, at the first failure).
final class MapCollector<Output: Sendable>: Sendable {
    private struct State {
        var results: [Result<Output, any Error>?]
        var completed = 0
        var failedEarly = false
    }

    private let state: Mutex<State>
    let done = Gate<Void>()
    let count: Int
    let failFast: Bool
    let progress: (@Sendable (PoolProgress) -> Void)?

    init(count: Int, failFast: Bool, progress: (@Sendable (PoolProgress) -> Void)?) {
        self.count = count
        self.failFast = failFast
        self.progress = progress
        state = Mutex(State(results: Array(repeating: nil, count: count)))
        if count == 0 { done.open(.success(())) }
    }

    func deliver(_ index: Int, _ result: Result<Output, any Error>) {
        let (completed, finish, failure) = state.withLock { state -> (Int, Bool, (any Error)?) in
            guard state.results[index] == nil else { return (state.completed, false, nil) }
            state.results[index] = result
            state.completed += 1
            if failFast, case .failure(let error) = result, !state.failedEarly {
                state.failedEarly = true
                return (state.completed, false, error)
            }
            return (state.completed, state.completed == count, nil)
        }
        progress?(PoolProgress(completed: completed, total: count))
        if let failure { done.open(.failure(failure)) }
        if finish { done.open(.success(())) }
    }

    func cancel() { done.open(.failure(PoolError.cancelled)) }

    var failedEarly: Bool { state.withLock { $0.failedEarly } }

    /// Every result (items not in, after an early failure, are cancelled).
    var results: [Result<Output, any Error>] {
        state.withLock { state in state.results.map { $0 ?? .failure(PoolError.cancelled) } }
    }
}
