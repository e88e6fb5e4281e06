/// A set that every process holding the handle can read and change, without a server process.
///
/// Elements are any `Codable & Hashable` type. Reads are answered by a copy kept in each
/// process, refreshed from shared memory only when another process has changed something; each
/// change takes the set's lock for about a microsecond. ``insert(_:)`` tells you whether *your*
/// call added the element, atomically, so a set doubles as a cross-process "claim" table.
///
/// ```swift
/// let seen = try Manager().set(Set<String>.self)
/// if try seen.insert(url) { /* only one process gets here per url */ }
/// ```
///
/// The throwing methods report ``ManagerError``s; iteration is a convenience that stops the
/// program on one.
public final class SharedSet<Element: Codable & Hashable & Sendable>: Sendable, Codable, Sequence {
    @usableFromInline let log: OperationLog<Contents>

    /// A new set holding `elements`, whose log has room for `capacity` bytes (see
    /// ``Manager/capacity``).
    public convenience init(_ elements: Set<Element> = [], capacity: Int = Manager.defaultCapacity)
        throws(ManagerError)
    {
        self.init(log: try OperationLog(kind: .set, capacity: capacity))
        if !elements.isEmpty { try formUnion(elements) }
    }

    init(log: OperationLog<Contents>) { self.log = log }

    /// The size in bytes of the shared log: the elements, written compactly, must fit in it.
    public var capacity: Int { log.capacity }

    // MARK: Reading

    /// Whether the set holds `element`.
    @inlinable
    public func contains(_ element: Element) throws(ManagerError) -> Bool {
        try log.read { contents in contents.elements.contains(element) }
    }

    /// The number of elements.
    @inlinable
    public var count: Int {
        get throws(ManagerError) { try log.read { contents in contents.elements.count } }
    }

    /// Whether the set is empty.
    @inlinable
    public var isEmpty: Bool {
        get throws(ManagerError) { try log.read { contents in contents.elements.isEmpty } }
    }

    /// All elements now, as a Swift set (a copy: later changes do not show in it).
    @inlinable
    public var snapshot: Set<Element> {
        get throws(ManagerError) { try log.read { contents in contents.elements } }
    }

    /// Iterates over a snapshot of the elements. Stops the program if the snapshot cannot be read
    /// (see ``snapshot``).
    @inlinable
    public func makeIterator() -> Set<Element>.Iterator {
        do {
            return try snapshot.makeIterator()
        } catch {
            fatalError("\(SharedSet.self): \(error)")
        }
    }

    // MARK: Writing

    /// Adds `element`; returns `true` if this call added it, `false` if it was there already
    /// (then nothing is written).
    @discardableResult
    @inlinable
    public func insert(_ element: Element) throws(ManagerError) -> Bool {
        try log.write { contents, writer throws(ManagerError) in
            guard !contents.elements.contains(element) else { return false }
            try Contents.write(Contents.insertOperation, element, to: &writer)
            return true
        }
    }

    /// Removes `element`; returns `true` if this call removed it, `false` if it was not there.
    @discardableResult
    @inlinable
    public func remove(_ element: Element) throws(ManagerError) -> Bool {
        try log.write { contents, writer throws(ManagerError) in
            guard contents.elements.contains(element) else { return false }
            try Contents.write(Contents.removeOperation, element, to: &writer)
            return true
        }
    }

    /// Adds every element of `other`, all at once.
    @inlinable
    public func formUnion(_ other: some Sequence<Element>) throws(ManagerError) {
        let other = Set(other)
        try log.write { contents, writer throws(ManagerError) in
            for element in other where !contents.elements.contains(element) {
                try Contents.write(Contents.insertOperation, element, to: &writer)
            }
        }
    }

    /// Removes every element of `other`, all at once.
    @inlinable
    public func subtract(_ other: some Sequence<Element>) throws(ManagerError) {
        let other = Set(other)
        try log.write { contents, writer throws(ManagerError) in
            for element in other where contents.elements.contains(element) {
                try Contents.write(Contents.removeOperation, element, to: &writer)
            }
        }
    }

    /// Removes every element.
    @inlinable
    public func removeAll() throws(ManagerError) {
        try log.write { contents, writer throws(ManagerError) in
            if !contents.elements.isEmpty { try writer.entry(Contents.removeAllOperation) }
        }
    }

    /// Changes the whole set atomically: `body` gets all elements and may change them in any
    /// way; only the differences are written. Returns what `body` returns. `body` runs holding
    /// the set's lock: keep it short, and do not use this container inside it (that would wait
    /// for itself).
    @discardableResult
    @inlinable
    public func modify<Result: Sendable>(_ body: (inout Set<Element>) -> Result) throws(ManagerError)
        -> Result
    {
        try log.write { contents, writer throws(ManagerError) in
            var elements = contents.elements
            let result = body(&elements)
            if elements.isEmpty && !contents.elements.isEmpty {
                try writer.entry(Contents.removeAllOperation)
                return result
            }
            for element in contents.elements.subtracting(elements) {
                try Contents.write(Contents.removeOperation, element, to: &writer)
            }
            for element in elements.subtracting(contents.elements) {
                try Contents.write(Contents.insertOperation, element, to: &writer)
            }
            return result
        }
    }

    // MARK: Handles

    /// Encodes the handle: the shared memory (its descriptor travels with the message) and what
    /// it holds. Works inside a task given to a child or a message sent over a
    /// ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws { try log.encode(to: encoder) }

    /// Maps a set sent by another process. Throws ``ManagerError/corrupted(_:)`` if it was sent
    /// as another kind of container or with another element type.
    public convenience init(from decoder: any Decoder) throws {
        self.init(log: try OperationLog(from: decoder, kind: .set))
    }
}

extension SharedSet {
    /// The elements, as every process rebuilds them from the log.
    @usableFromInline
    struct Contents: LogState {
        @inlinable static var insertOperation: UInt32 { 1 }
        @inlinable static var removeOperation: UInt32 { 2 }
        @inlinable static var removeAllOperation: UInt32 { 3 }

        @usableFromInline var elements: Set<Element> = []

        @inlinable init() {}

        @inlinable mutating func apply(_ entry: inout LogEntry) throws(ManagerError) {
            switch entry.operation {
            case Self.insertOperation: elements.insert(try entry.rest(Element.self))
            case Self.removeOperation: elements.remove(try entry.rest(Element.self))
            case Self.removeAllOperation: elements.removeAll()
            default: throw entry.unknownOperation
            }
        }

        @inlinable func writeSnapshot(to writer: inout LogEntryWriter) throws(ManagerError) {
            for element in elements { try Self.write(Self.insertOperation, element, to: &writer) }
        }

        @inlinable static func write(_ operation: UInt32, _ element: Element, to writer: inout LogEntryWriter)
            throws(ManagerError)
        {
            try writer.entry(operation) { (writer) throws(ManagerError) in try writer.append(element) }
        }
    }
}
