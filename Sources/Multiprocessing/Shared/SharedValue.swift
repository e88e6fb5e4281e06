import Atomics

/// One value in shared memory, seen and changed by every process holding the handle (CPython's
/// `multiprocessing.Value`).
///
/// Any trivially copyable type works (integers, floating point, `Bool`, tuples and structs of
/// them). Integers also get lock-free atomic operations (`load`, `store`, `exchange`,
/// `compareExchange`, `add`), far faster than a lock; anything else — or several steps that must
/// happen together — goes through ``withLock(timeout:isolation:_:)`` or
/// ``withLockBlocking(_:)``, using the ``lock`` that lives next to the value.
///
/// ```swift
/// let done = try SharedValue(0)          // pass `done` to children as a task property
/// done.add(1)                            // in each child, per item finished
/// let ratio = try SharedValue(0.0)
/// ratio.withLockBlocking { $0 += 0.5 }
/// ```
public final class SharedValue<Value: BitwiseCopyable & Sendable>: Sendable, Codable {
    /// The lock beside the value. `withLock` uses it; hold it yourself to group operations.
    public let lock: ProcessLock

    let placement: SharedPlacement

    /// Where the value starts: after the lock, aligned for `Value`.
    static var valueOffset: Int {
        let align = max(MemoryLayout<Value>.alignment, 8)
        return (ProcessLock.layoutSize + align - 1) / align * align
    }

    static var layoutSize: Int { valueOffset + max(MemoryLayout<Value>.size, 1) }

    /// Places `initial` in a fresh anonymous shared segment.
    public init(_ initial: Value) throws(SharedMemoryError) {
        placement = SharedPlacement(memory: try SharedMemory(size: Self.layoutSize), offset: 0)
        lock = ProcessLock(placement: placement)
        pointer.initialize(to: initial)
    }

    init(placement: SharedPlacement) {
        self.placement = placement
        lock = ProcessLock(placement: placement)
    }

    /// The value's address in this process, for code that manages its own synchronization.
    /// Valid while this handle lives.
    public var pointer: UnsafeMutablePointer<Value> {
        (placement.address + Self.valueOffset).assumingMemoryBound(to: Value.self)
    }

    /// Reads the value under the lock.
    public func get() -> Value { withLockBlocking { $0 } }

    /// Writes the value under the lock.
    public func set(_ newValue: Value) { withLockBlocking { $0 = newValue } }

    /// Runs `body` on the value while holding the lock, blocking the thread while it waits.
    /// Critical sections on a shared value are short: this is the fast way in.
    public func withLockBlocking<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try lock.withLockBlocking { () throws(Failure) -> Result in try body(&pointer.pointee) }
    }

    /// Runs `body` on the value while holding the lock, waiting without blocking a cooperative
    /// thread. Throws what `body` throws, or a ``SyncError`` if the lock was not acquired.
    public func withLock<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: (inout Value) async throws -> Result
    ) async throws -> Result {
        try await lock.acquire(timeout: timeout)
        defer { try? lock.release() }
        return try await body(&pointer.pointee)
    }

    /// Encodes the segment (its descriptor travels with the message).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(placement)
        try container.encode(MemoryLayout<Value>.size)
        try container.encode(String(reflecting: Value.self))
    }

    /// Maps the value in this process; checks that the segment holds a value of this size.
    public convenience init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let placement = try container.decode(SharedPlacement.self)
        let size = try container.decode(Int.self)
        let type = try container.decode(String.self)
        guard size == MemoryLayout<Value>.size, type == String(reflecting: Value.self), placement.offset == 0,
            placement.memory.size >= Self.layoutSize
        else {
            throw SharedMemoryError.layoutMismatch(
                "SharedValue<\(Value.self)> sent as a SharedValue<\(type)> of \(size) bytes in a \(placement.memory.size)-byte segment"
            )
        }
        self.init(placement: placement)
    }
}

extension SharedValue where Value: AtomicInteger {
    // The standard integers' atomic representation is the integer itself, bit for bit, so the
    // locked and the lock-free paths see the same memory.
    private var atomic: UnsafeAtomic<Value> {
        assert(MemoryLayout<Value.AtomicRepresentation>.size == MemoryLayout<Value>.size)
        return UnsafeAtomic(
            at: UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: Value.AtomicRepresentation.self))
    }

    /// Reads the value atomically, without the lock.
    public func load() -> Value {
        atomic.load(ordering: .sequentiallyConsistent)
    }

    /// Writes the value atomically, without the lock.
    public func store(_ newValue: Value) {
        atomic.store(newValue, ordering: .sequentiallyConsistent)
    }

    /// Writes `newValue` and returns the value it replaced, atomically.
    @discardableResult
    public func exchange(_ newValue: Value) -> Value {
        atomic.exchange(newValue, ordering: .sequentiallyConsistent)
    }

    /// Writes `desired` only if the value is `expected`; returns whether it did and the value
    /// found.
    public func compareExchange(
        expected: Value, desired: Value
    ) -> (exchanged: Bool, original: Value) {
        atomic.compareExchange(expected: expected, desired: desired, ordering: .sequentiallyConsistent)
    }

    /// Adds `delta` atomically (wrapping on overflow) and returns the new value.
    @discardableResult
    public func add(_ delta: Value) -> Value {
        atomic.wrappingIncrementThenLoad(by: delta, ordering: .sequentiallyConsistent)
    }

    /// Subtracts `delta` atomically (wrapping on overflow) and returns the new value.
    @discardableResult
    public func subtract(_ delta: Value) -> Value {
        atomic.wrappingDecrementThenLoad(by: delta, ordering: .sequentiallyConsistent)
    }
}
