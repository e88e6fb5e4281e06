/// A list that every process holding the handle can read and change (CPython's
/// `Manager().list()`), without a server process.
///
/// Elements are any `Codable` type. Reads are answered by a copy kept in each process, refreshed
/// from shared memory only when another process has changed something; each change takes the
/// list's lock for about a microsecond. Positions are checked at the moment of the change, under
/// the lock, and a bad one throws ``ManagerError/indexOutOfRange(index:count:)``: another process
/// may have shortened the list since you looked. ``update(at:_:)`` and ``modify(_:)`` read and
/// change atomically.
///
/// Pass the list to a child as a stored property of its task.
///
/// ```swift
/// let list = try Manager().list([1, 2, 3])
/// // in a child:
/// try list.replaceElement(at: 0, with: 100)
/// // back in the parent:
/// print(try list.snapshot)   // [100, 2, 3]
/// ```
///
/// The throwing methods report ``ManagerError``s; the subscript and iteration are conveniences
/// that stop the program on one (as an `Array` does on a bad index).
public final class SharedList<Element: Codable & Sendable>: Sendable, Codable, Sequence {
    @usableFromInline let log: OperationLog<Contents>

    /// A new list holding `elements`, whose log has room for `capacity` bytes (see
    /// ``Manager/capacity``).
    public convenience init(_ elements: [Element] = [], capacity: Int = Manager.defaultCapacity)
        throws(ManagerError)
    {
        self.init(log: try OperationLog(kind: .list, capacity: capacity))
        if !elements.isEmpty { try append(contentsOf: elements) }
    }

    init(log: OperationLog<Contents>) { self.log = log }

    /// The size in bytes of the shared log: the elements, written compactly, must fit in it.
    public var capacity: Int { log.capacity }

    // MARK: Reading

    /// The element at `index`.
    @inlinable
    public func element(at index: Int) throws(ManagerError) -> Element {
        try log.read { contents throws(ManagerError) in
            try contents.check(index)
            return contents.elements[index]
        }
    }

    /// The number of elements.
    @inlinable
    public var count: Int {
        get throws(ManagerError) { try log.read { contents in contents.elements.count } }
    }

    /// Whether the list is empty.
    @inlinable
    public var isEmpty: Bool {
        get throws(ManagerError) { try log.read { contents in contents.elements.isEmpty } }
    }

    /// The first element, or `nil` if the list is empty.
    @inlinable
    public var first: Element? {
        get throws(ManagerError) { try log.read { contents in contents.elements.first } }
    }

    /// The last element, or `nil` if the list is empty.
    @inlinable
    public var last: Element? {
        get throws(ManagerError) { try log.read { contents in contents.elements.last } }
    }

    /// All elements now, as a Swift array (a copy: later changes do not show in it).
    @inlinable
    public var snapshot: [Element] {
        get throws(ManagerError) { try log.read { contents in contents.elements } }
    }

    /// The position of the first element that satisfies `predicate`, or `nil`.
    @inlinable
    public func firstIndex(where predicate: (Element) -> Bool) throws(ManagerError) -> Int? {
        try log.read { contents in contents.elements.firstIndex(where: predicate) }
    }

    /// Iterates over a snapshot of the elements. Stops the program if the snapshot cannot be read
    /// (see ``snapshot``).
    @inlinable
    public func makeIterator() -> IndexingIterator<[Element]> {
        ManagerError.trapping(Self.self) { () throws(ManagerError) in try snapshot }.makeIterator()
    }

    /// The element at `index`. Stops the program on a ``ManagerError`` (a bad index, as an
    /// `Array` does): use ``element(at:)`` and ``replaceElement(at:with:)`` to handle one, or
    /// when other processes may shorten the list.
    @inlinable
    public subscript(index: Int) -> Element {
        get { ManagerError.trapping(Self.self) { () throws(ManagerError) in try element(at: index) } }
        set {
            ManagerError.trapping(Self.self) { () throws(ManagerError) in
                try replaceElement(at: index, with: newValue)
            }
        }
    }

    // MARK: Writing

    /// Adds `element` at the end.
    @inlinable
    public func append(_ element: Element) throws(ManagerError) {
        try log.write { _, writer throws(ManagerError) in try Contents.writeAppend(element, to: &writer) }
    }

    /// Adds `elements` at the end, all at once (CPython's `l.extend(elements)`).
    @inlinable
    public func append(contentsOf elements: some Sequence<Element>) throws(ManagerError) {
        let elements = Array(elements)
        try log.write { _, writer throws(ManagerError) in try Contents.writeAppend(elements, to: &writer) }
    }

    /// Inserts `element` at `index` (`0...count`); later elements move up one place.
    @inlinable
    public func insert(_ element: Element, at index: Int) throws(ManagerError) {
        try log.write { contents, writer throws(ManagerError) in
            guard index >= 0, index <= contents.elements.count else {
                throw .indexOutOfRange(index: index, count: contents.elements.count)
            }
            try writer.entry(Contents.insertOperation) { (writer) throws(ManagerError) in
                writer.appendWord(index)
                try writer.append(element)
            }
        }
    }

    /// Replaces the element at `index` with `element`; returns the element replaced.
    @discardableResult
    @inlinable
    public func replaceElement(at index: Int, with element: Element) throws(ManagerError) -> Element {
        try update(at: index) { (current: inout Element) -> Element in
            defer { current = element }
            return current
        }
    }

    /// Removes and returns the element at `index`; later elements move down one place
    /// (CPython's `l.pop(index)`).
    @discardableResult
    @inlinable
    public func remove(at index: Int) throws(ManagerError) -> Element {
        try log.write { contents, writer throws(ManagerError) in
            try contents.check(index)
            try Contents.writeRemove(at: index, to: &writer)
            return contents.elements[index]
        }
    }

    /// Removes and returns the first element that satisfies `predicate`, or returns `nil` (and
    /// changes nothing) if none does. Atomic: the element found is the one removed.
    @discardableResult
    @inlinable
    public func removeFirst(where predicate: (Element) -> Bool) throws(ManagerError) -> Element? {
        try log.write { contents, writer throws(ManagerError) in
            guard let index = contents.elements.firstIndex(where: predicate) else { return nil }
            try Contents.writeRemove(at: index, to: &writer)
            return contents.elements[index]
        }
    }

    /// Removes and returns the last element, or `nil` if the list is empty (CPython's
    /// `l.pop()`).
    @discardableResult
    @inlinable
    public func popLast() throws(ManagerError) -> Element? {
        try log.write { contents, writer throws(ManagerError) in
            guard let last = contents.elements.last else { return nil }
            try Contents.writeRemove(at: contents.elements.count - 1, to: &writer)
            return last
        }
    }

    /// Removes every element.
    @inlinable
    public func removeAll() throws(ManagerError) {
        try log.write { contents, writer throws(ManagerError) in
            if !contents.elements.isEmpty { try writer.entry(Contents.removeAllOperation) }
        }
    }

    /// Reads and changes the element at `index` atomically: no other process changes the list
    /// between your read and your write. Returns what `body` returns. `body` runs holding the
    /// list's lock: keep it short, and do not use this container inside it (that would wait for itself).
    ///
    /// ```swift
    /// try totals.update(at: 2) { $0 += 1 }
    /// ```
    @discardableResult
    @inlinable
    public func update<Result: Sendable>(at index: Int, _ body: (inout Element) -> Result)
        throws(ManagerError)
        -> Result
    {
        try log.write { contents, writer throws(ManagerError) in
            try contents.check(index)
            var element = contents.elements[index]
            let result = body(&element)
            try writer.entry(Contents.replaceOperation) { (writer) throws(ManagerError) in
                writer.appendWord(index)
                try writer.append(element)
            }
            return result
        }
    }

    /// Changes the whole list atomically: `body` gets all elements and may change them in any
    /// way (sort, filter, rearrange); the result replaces the list. Returns what `body` returns.
    /// `body` runs holding the list's lock: keep it short, and do not use this container inside
    /// it (that would wait for itself).
    ///
    /// ```swift
    /// try list.modify { $0.sort() }
    /// ```
    @discardableResult
    @inlinable
    public func modify<Result: Sendable>(_ body: (inout [Element]) -> Result) throws(ManagerError) -> Result {
        try log.write { contents, writer throws(ManagerError) in
            var elements = contents.elements
            let result = body(&elements)
            try writer.entry(Contents.removeAllOperation)
            try Contents.writeAppend(elements, to: &writer)
            return result
        }
    }

    // MARK: Handles

    /// Encodes the handle: the shared memory (its descriptor travels with the message) and what
    /// it holds. Works inside a task given to a child or a message sent over a
    /// ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws { try log.encode(to: encoder) }

    /// Maps a list sent by another process. Throws ``ManagerError/corrupted(_:)`` if it was sent
    /// as another kind of container or with another element type.
    public convenience init(from decoder: any Decoder) throws {
        self.init(log: try OperationLog(from: decoder, kind: .list))
    }

}

extension SharedList where Element: Equatable {
    /// The position of the first element equal to `element`, or `nil` (CPython's `l.index(x)`).
    @inlinable
    public func firstIndex(of element: Element) throws(ManagerError) -> Int? {
        try log.read { contents in contents.elements.firstIndex(of: element) }
    }

    /// Whether the list holds an element equal to `element`.
    @inlinable
    public func contains(_ element: Element) throws(ManagerError) -> Bool {
        try log.read { contents in contents.elements.contains(element) }
    }

    /// Removes the first element equal to `element`; returns whether there was one (CPython's
    /// `l.remove(x)`).
    @discardableResult
    @inlinable
    public func removeFirst(_ element: Element) throws(ManagerError) -> Bool {
        try removeFirst { $0 == element } != nil
    }
}

extension SharedList {
    /// The elements, as every process rebuilds them from the log.
    @usableFromInline
    struct Contents: LogState {
        @inlinable static var appendOperation: UInt32 { 1 }
        @inlinable static var appendManyOperation: UInt32 { 2 }
        @inlinable static var insertOperation: UInt32 { 3 }
        @inlinable static var replaceOperation: UInt32 { 4 }
        @inlinable static var removeOperation: UInt32 { 5 }
        @inlinable static var removeAllOperation: UInt32 { 6 }
        /// Elements per entry when many are written at once.
        @inlinable static var chunk: Int { 1024 }

        @usableFromInline var elements: [Element] = []

        @inlinable init() {}

        @inlinable func check(_ index: Int) throws(ManagerError) {
            guard index >= 0, index < elements.count else {
                throw .indexOutOfRange(index: index, count: elements.count)
            }
        }

        @inlinable mutating func apply(_ entry: inout LogEntry) throws(ManagerError) {
            switch entry.operation {
            case Self.appendOperation:
                elements.append(try entry.rest(Element.self))
            case Self.appendManyOperation:
                elements.append(contentsOf: try entry.rest([Element].self))
            case Self.insertOperation:
                let index = try entry.word()
                guard index >= 0, index <= elements.count else { throw corruptIndex(index) }
                elements.insert(try entry.rest(Element.self), at: index)
            case Self.replaceOperation:
                let index = try entry.word()
                guard index >= 0, index < elements.count else { throw corruptIndex(index) }
                elements[index] = try entry.rest(Element.self)
            case Self.removeOperation:
                let index = try entry.word()
                guard index >= 0, index < elements.count else { throw corruptIndex(index) }
                elements.remove(at: index)
            case Self.removeAllOperation:
                elements.removeAll()
            default:
                throw entry.unknownOperation
            }
        }

        @inlinable func corruptIndex(_ index: Int) -> ManagerError {
            .corrupted("list entry for index \(index) of \(elements.count) elements")
        }

        @inlinable func writeSnapshot(to writer: inout LogEntryWriter) throws(ManagerError) {
            try Self.writeAppend(elements, to: &writer)
        }

        @inlinable static func writeAppend(_ element: Element, to writer: inout LogEntryWriter)
            throws(ManagerError)
        {
            try writer.entry(appendOperation) { (writer) throws(ManagerError) in try writer.append(element) }
        }

        @inlinable static func writeAppend(_ elements: [Element], to writer: inout LogEntryWriter)
            throws(ManagerError)
        {
            var start = 0
            while start < elements.count {
                let end = Swift.min(start + chunk, elements.count)
                let slice = Array(elements[start..<end])
                try writer.entry(appendManyOperation) { (writer) throws(ManagerError) in
                    try writer.append(slice)
                }
                start = end
            }
        }

        @inlinable static func writeRemove(at index: Int, to writer: inout LogEntryWriter)
            throws(ManagerError)
        {
            try writer.entry(removeOperation) { (writer) throws(ManagerError) in writer.appendWord(index) }
        }
    }
}
