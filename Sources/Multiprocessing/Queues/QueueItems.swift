/// The items of a queue as an `AsyncSequence`, taken one by one until the queue is closed and
/// empty (``ProcessQueue/items``).
///
/// ```swift
/// for try await line in queue.items { print(line) }   // ends when some process calls close()
/// ```
public struct QueueItems<Element: Codable & Sendable>: AsyncSequence, Sendable {
    let queue: ProcessQueue<Element>

    /// Takes the items.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let queue: ProcessQueue<Element>

        /// The next item, or `nil` once the queue is closed and empty.
        public mutating func next() async throws(QueueError) -> Element? {
            do {
                return try await queue.get()
            } catch .closed {
                return nil
            }
        }
    }

    /// Makes an iterator.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(queue: queue) }
}
