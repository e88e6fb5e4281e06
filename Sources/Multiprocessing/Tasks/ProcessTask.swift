/// Work that runs in another process: the stored properties are its arguments.
///
/// This is CPython's `Process(target=f, args=...)` and its `run()`-overriding subclass in one:
/// the parent encodes the value, the child decodes it and calls ``run()``. Whatever `run`
/// returns comes back to the parent as ``ChildProcess/value-9ekns``.
///
/// ```swift
/// struct Greeter: ProcessTask {
///     var delay: Duration
///     var message: String
///     func run() async throws {
///         try await Task.sleep(for: delay)
///         print(message)
///     }
/// }
/// ```
///
/// The type must be visible to the runtime by name: `internal` or `public`, at file scope or
/// nested in another such type, generic or not. `private`, `fileprivate` and local types cannot
/// be found in the child; ``ChildProcess`` rejects them before anything is spawned.
///
/// `Output` is `Void` or any `Codable` type. An error thrown by `run` is re-thrown in the parent:
/// as the same value when its type is `Codable` and visible by name, otherwise as a
/// ``RemoteError`` that keeps its description.
public protocol ProcessTask: Codable, Sendable {
    /// What ``run()`` returns: `Void` or a `Codable` type.
    associatedtype Output: Sendable = Void

    /// The work itself, run in the child process.
    func run() async throws -> Output
}

/// A function over inputs, for pools: the stored properties are fixed arguments shared by every
/// call, and each call gets one `Input`.
///
/// ```swift
/// struct Square: ProcessFunction {
///     func callAsFunction(_ x: Int) async throws -> Int { x * x }
/// }
/// ```
///
/// The same naming rules as ``ProcessTask`` apply.
public protocol ProcessFunction: Codable, Sendable {
    /// One call's argument.
    associatedtype Input: Codable & Sendable
    /// One call's result.
    associatedtype Output: Codable & Sendable

    /// Computes one result, in a worker process.
    func callAsFunction(_ input: Input) async throws -> Output

    /// Runs a worker's share of items: job `k` is `inputs[itemEnds[k - 1] ..< itemEnds[k]]`.
    /// Starting at item `firstItem` (in job `firstJob`), calls the function on each item in
    /// order, appending each result to `outputs` or, when the call throws, the item's index and
    /// error to `failures`; returns the index of the next item to run, once an item ends past
    /// `deadline`. Each item's start and end are recorded in `progress`, so that if the worker
    /// dies the pool knows which item was running.
    ///
    /// Not API: the pool's worker calls it, and nothing else should. Do not implement or call
    /// it; it may change in any release. It is public (and underscored) only so that its
    /// default implementation can be `@inlinable`: compiled for your type where it conforms,
    /// which keeps a worker's cost per item at one direct call instead of the runtime's generic
    /// dispatch.
    func _callJobs(
        _ inputs: [Input], itemEnds: [Int], from firstItem: Int, until deadline: ContinuousClock.Instant,
        progress: _ItemProgress, into outputs: inout [Output], failures: inout [(item: Int, error: any Error)]
    ) async -> Int
}

extension ProcessFunction {
    /// Runs items until one ends past `deadline` (see the requirement).
    @inlinable
    public func _callJobs(
        _ inputs: [Input], itemEnds: [Int], from firstItem: Int, until deadline: ContinuousClock.Instant,
        progress: _ItemProgress, into outputs: inout [Output], failures: inout [(item: Int, error: any Error)]
    ) async -> Int {
        var item = firstItem
        let end = itemEnds.last ?? 0
        // Answers leave about every millisecond, even from the middle of a long chunk, so that
        // a worker killed later takes little finished work with it. Reading the clock costs as
        // much as a trivial item, so while items are quick it is read every few items only.
        var stride = 1
        var countdown = 1
        var lastCheck = ContinuousClock.now
        while item < end {
            progress.begin(item)
            do {
                outputs.append(try await self(inputs[item]))
            } catch {
                failures.append((item, error))
            }
            progress.end(item)
            item += 1
            countdown -= 1
            if countdown == 0 {
                let now = ContinuousClock.now
                if now > deadline { break }
                stride = now - lastCheck < .microseconds(10) ? min(stride &* 2, 64) : 1
                countdown = stride
                lastCheck = now
            }
        }
        return item
    }
}
