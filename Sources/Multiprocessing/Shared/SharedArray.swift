import Atomics

/// A fixed-size array of trivially copyable elements in shared memory (CPython's
/// `multiprocessing.Array`).
///
/// Every process holding the handle sees the same elements, without copies: read and write them
/// by index, or take the whole buffer with ``withUnsafeMutableBufferPointer(_:)`` (hand it to C,
/// SIMD code, or a parser). Element access by subscript is not synchronized; group changes under
/// the ``lock`` with ``withLockBlocking(_:)`` / ``withLock(timeout:isolation:_:)``, or use the
/// lock-free per-element operations on integer arrays (``add(_:at:)``, ``load(at:)``, …).
///
/// ```swift
/// let histogram = try SharedArray<Int>(repeating: 0, count: 10)   // a task property
/// histogram.add(1, at: bucket)                                    // in each child
/// ```
public final class SharedArray<Element: BitwiseCopyable & Sendable>: Sendable, Codable,
    RandomAccessCollection
{
    /// The lock beside the elements, or `nil` for an array made with `locked: false`.
    public let lock: ProcessLock?
    /// The number of elements (fixed at creation).
    public let count: Int

    let placement: SharedPlacement

    // Layout: [lock: 8 bytes][element count: Int64][has lock: UInt32][elements, aligned].
    static var elementsOffset: Int {
        let align = Swift.max(MemoryLayout<Element>.alignment, 8)
        return (20 + align - 1) / align * align
    }

    static func layoutSize(count: Int) -> Int {
        elementsOffset + Swift.max(MemoryLayout<Element>.stride * count, 1)
    }

    /// `count` copies of `value` in a fresh anonymous segment; with `locked: false` the array has
    /// no lock (CPython's `lock=False`).
    public convenience init(repeating value: Element, count: Int, locked: Bool = true)
        throws(SharedMemoryError)
    {
        try self.init(count: count, locked: locked)
        baseAddress.initialize(repeating: value, count: count)
    }

    /// The elements of `elements`, in a fresh anonymous segment.
    public convenience init(_ elements: some Collection<Element>, locked: Bool = true)
        throws(SharedMemoryError)
    {
        try self.init(count: elements.count, locked: locked)
        _ = UnsafeMutableBufferPointer(start: baseAddress, count: count).initialize(from: elements)
    }

    private init(count: Int, locked: Bool) throws(SharedMemoryError) {
        guard count >= 0 else { throw .invalidSize(count) }
        let memory = try SharedMemory(size: Self.layoutSize(count: count))
        placement = SharedPlacement(memory: memory, offset: 0)
        self.count = count
        lock = locked ? ProcessLock(placement: placement) : nil
        memory.baseAddress.storeBytes(of: Int64(count), toByteOffset: 8, as: Int64.self)
        memory.baseAddress.storeBytes(of: locked ? 1 : 0, toByteOffset: 16, as: UInt32.self)
    }

    private init(placement: SharedPlacement, count: Int, locked: Bool) {
        self.placement = placement
        self.count = count
        lock = locked ? ProcessLock(placement: placement) : nil
    }

    /// The first element's address in this process. Valid while this handle lives.
    public var baseAddress: UnsafeMutablePointer<Element> {
        (placement.address + Self.elementsOffset).assumingMemoryBound(to: Element.self)
    }

    /// The first index, 0.
    public var startIndex: Int { 0 }
    /// One past the last index, ``count``.
    public var endIndex: Int { count }

    /// The element at `index` (unsynchronized; traps out of bounds like an `Array`).
    public subscript(index: Int) -> Element {
        get {
            precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
            return baseAddress[index]
        }
        set {
            precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
            baseAddress[index] = newValue
        }
    }

    /// Calls `body` with the elements as a buffer (zero copy; unsynchronized).
    public func withUnsafeMutableBufferPointer<Result, Failure: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withExtendedLifetime(self) { () throws(Failure) -> Result in
            try body(UnsafeMutableBufferPointer(start: baseAddress, count: count))
        }
    }

    /// Runs `body` on the elements while holding the lock, blocking the thread while it waits.
    /// An array made with `locked: false` has no lock: `body` runs unguarded.
    public func withLockBlocking<Result, Failure: Error>(
        _ body: (UnsafeMutableBufferPointer<Element>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard let lock else { return try withUnsafeMutableBufferPointer(body) }
        return try lock.withLockBlocking { () throws(Failure) -> Result in
            try withUnsafeMutableBufferPointer(body)
        }
    }

    /// Runs `body` on the elements while holding the lock, waiting without blocking a
    /// cooperative thread.
    public func withLock<Result>(
        timeout: Duration? = nil, isolation: isolated (any Actor)? = #isolation,
        _ body: (UnsafeMutableBufferPointer<Element>) async throws -> Result
    ) async throws -> Result {
        if let lock { try await lock.acquire(timeout: timeout) }
        defer { try? lock?.release() }
        defer { withExtendedLifetime(self) {} }
        return try await body(UnsafeMutableBufferPointer(start: baseAddress, count: count))
    }

    /// A copy of the elements as an `Array` (unsynchronized; take the lock around it if writers
    /// may be active).
    public var snapshot: [Element] { Array(UnsafeBufferPointer(start: baseAddress, count: count)) }

    /// Encodes the segment (its descriptor travels with the message) and the element size.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(placement)
        try container.encode(MemoryLayout<Element>.stride)
        try container.encode(String(reflecting: Element.self))
    }

    /// Maps the array in this process; checks the segment against the element type.
    public convenience init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let placement = try container.decode(SharedPlacement.self)
        let stride = try container.decode(Int.self)
        let type = try container.decode(String.self)
        let base = placement.memory.baseAddress
        let count = placement.memory.size >= 20 ? Int(base.load(fromByteOffset: 8, as: Int64.self)) : -1
        guard stride == MemoryLayout<Element>.stride, type == String(reflecting: Element.self),
            placement.offset == 0, count >= 0,
            count <= placement.memory.size / Swift.max(stride, 1),
            placement.memory.size >= Self.layoutSize(count: count)
        else {
            throw SharedMemoryError.layoutMismatch(
                "SharedArray<\(Element.self)> sent as a SharedArray<\(type)> (\(stride)-byte elements) in a \(placement.memory.size)-byte segment"
            )
        }
        let locked = base.load(fromByteOffset: 16, as: UInt32.self) != 0
        self.init(placement: placement, count: count, locked: locked)
    }
}

extension SharedArray where Element: AtomicInteger {
    private func atomic(_ index: Int) -> UnsafeAtomic<Element> {
        precondition(index >= 0 && index < count, "SharedArray index \(index) out of range 0..<\(count)")
        assert(MemoryLayout<Element.AtomicRepresentation>.size == MemoryLayout<Element>.size)
        return UnsafeAtomic(
            at: UnsafeMutableRawPointer(baseAddress + index).assumingMemoryBound(
                to: Element.AtomicRepresentation.self))
    }

    /// Reads element `index` atomically.
    public func load(at index: Int) -> Element { atomic(index).load(ordering: .sequentiallyConsistent) }

    /// Writes element `index` atomically.
    public func store(_ value: Element, at index: Int) {
        atomic(index).store(value, ordering: .sequentiallyConsistent)
    }

    /// Adds `delta` to element `index` atomically (wrapping) and returns the new value.
    @discardableResult
    public func add(_ delta: Element, at index: Int) -> Element {
        atomic(index).wrappingIncrementThenLoad(by: delta, ordering: .sequentiallyConsistent)
    }

    /// Writes `desired` at `index` only if it holds `expected`; returns whether it did and the
    /// value found.
    public func compareExchange(expected: Element, desired: Element, at index: Int) -> (
        exchanged: Bool, original: Element
    ) {
        atomic(index).compareExchange(expected: expected, desired: desired, ordering: .sequentiallyConsistent)
    }
}
