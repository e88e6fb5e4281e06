/// A dictionary that every process holding the handle can read and change (CPython's
/// `Manager().dict()`), without a server process.
///
/// Keys and values are any `Codable` types. Reads are answered by a copy kept in each process,
/// refreshed from shared memory only when another process has changed something, so a read that
/// finds nothing new takes no lock and makes no system call. A change takes the container's
/// lock for about a microsecond. ``update(_:_:)`` changes one entry atomically: no other process
/// changes the dictionary between your read and your write.
///
/// Pass the dictionary to a child as a stored property of its task.
///
/// ```swift
/// let scores = try Manager().dictionary([String: Int].self)
/// try scores.updateValue(3, forKey: "ann")
/// try scores.update("bob", default: 0) { $0 += 1 }   // atomic, from any process
/// print(try scores.snapshot)                         // ["ann": 3, "bob": 1]
/// ```
///
/// The throwing methods report ``ManagerError``s; the subscript and iteration are conveniences
/// that stop the program on one (as an `Array` does on a bad index).
public final class SharedDictionary<Key: Codable & Hashable & Sendable, Value: Codable & Sendable>: Sendable,
    Codable, Sequence
{
    @usableFromInline let log: OperationLog<Contents>

    /// A new dictionary holding `contents`, whose log has room for `capacity` bytes (see
    /// ``Manager/capacity``).
    public convenience init(_ contents: [Key: Value] = [:], capacity: Int = Manager.defaultCapacity)
        throws(ManagerError)
    {
        self.init(log: try OperationLog(kind: .dictionary, capacity: capacity))
        if !contents.isEmpty { try update(with: contents) }
    }

    init(log: OperationLog<Contents>) { self.log = log }

    /// The size in bytes of the shared log: the contents, written compactly, must fit in it.
    public var capacity: Int { log.capacity }

    // MARK: Reading

    /// The value for `key`, or `nil`.
    @inlinable
    public func value(forKey key: Key) throws(ManagerError) -> Value? {
        try log.read { contents in contents.entries[key] }
    }

    /// The value for `key`, or `defaultValue` if there is none (CPython's `d.get(k, default)`).
    @inlinable
    public func value(forKey key: Key, default defaultValue: @autoclosure () -> Value) throws(ManagerError)
        -> Value
    {
        try value(forKey: key) ?? defaultValue()
    }

    /// Whether the dictionary has a value for `key`.
    @inlinable
    public func contains(_ key: Key) throws(ManagerError) -> Bool {
        try log.read { contents in contents.entries[key] != nil }
    }

    /// The number of entries.
    @inlinable
    public var count: Int {
        get throws(ManagerError) { try log.read { contents in contents.entries.count } }
    }

    /// Whether the dictionary has no entries.
    @inlinable
    public var isEmpty: Bool {
        get throws(ManagerError) { try log.read { contents in contents.entries.isEmpty } }
    }

    /// The keys, in no particular order.
    @inlinable
    public var keys: [Key] {
        get throws(ManagerError) { try log.read { contents in Array(contents.entries.keys) } }
    }

    /// The values, in no particular order.
    @inlinable
    public var values: [Value] {
        get throws(ManagerError) { try log.read { contents in Array(contents.entries.values) } }
    }

    /// All entries now, as a Swift dictionary (a copy: later changes do not show in it).
    @inlinable
    public var snapshot: [Key: Value] {
        get throws(ManagerError) { try log.read { contents in contents.entries } }
    }

    /// Iterates over a snapshot of the entries. Stops the program if the snapshot cannot be read
    /// (see ``snapshot``).
    @inlinable
    public func makeIterator() -> Dictionary<Key, Value>.Iterator {
        ManagerError.trapping(Self.self) { () throws(ManagerError) in try snapshot }.makeIterator()
    }

    /// The value for `key`, or `nil`; assigning `nil` removes it. Stops the program on a
    /// ``ManagerError``: use ``value(forKey:)``, ``updateValue(_:forKey:)`` and
    /// ``removeValue(forKey:)`` to handle one.
    @inlinable
    public subscript(key: Key) -> Value? {
        get { ManagerError.trapping(Self.self) { () throws(ManagerError) in try value(forKey: key) } }
        set {
            ManagerError.trapping(Self.self) { () throws(ManagerError) in
                if let newValue {
                    try updateValue(newValue, forKey: key)
                } else {
                    try removeValue(forKey: key)
                }
            }
        }
    }

    // MARK: Writing

    /// Sets the value for `key`; returns the value it replaced, if any.
    @discardableResult
    @inlinable
    public func updateValue(_ value: Value, forKey key: Key) throws(ManagerError) -> Value? {
        try log.write { contents, writer throws(ManagerError) in
            try Contents.writeSet(key, value, to: &writer)
            return contents.entries[key]
        }
    }

    /// Removes the value for `key`; returns it, or `nil` if there was none (and then writes
    /// nothing).
    @discardableResult
    @inlinable
    public func removeValue(forKey key: Key) throws(ManagerError) -> Value? {
        try log.write { contents, writer throws(ManagerError) in
            guard let old = contents.entries[key] else { return nil }
            try Contents.writeRemove(key, to: &writer)
            return old
        }
    }

    /// Sets every entry of `other`, all at once (CPython's `d.update(other)`).
    @inlinable
    public func update(with other: [Key: Value]) throws(ManagerError) {
        try log.write { _, writer throws(ManagerError) in
            for (key, value) in other { try Contents.writeSet(key, value, to: &writer) }
        }
    }

    /// Removes every entry.
    @inlinable
    public func removeAll() throws(ManagerError) {
        try log.write { contents, writer throws(ManagerError) in
            if !contents.entries.isEmpty { try writer.entry(Contents.removeAllOperation) }
        }
    }

    /// Reads and changes the entry for `key` atomically: `body` gets its value (`nil` if there is
    /// none) and may change it, set it or remove it (`nil`); no other process changes the
    /// dictionary meanwhile. Returns what `body` returns.
    ///
    /// `body` runs holding the dictionary's lock: keep it short, and do not use this container inside it
    /// (that would wait for itself).
    ///
    /// ```swift
    /// try stock.update("apples") { count in count = (count ?? 0) - 1 }
    /// ```
    @discardableResult
    @inlinable
    public func update<Result: Sendable>(_ key: Key, _ body: (inout Value?) -> Result) throws(ManagerError)
        -> Result
    {
        try log.write { contents, writer throws(ManagerError) in
            let old = contents.entries[key]
            var value = old
            let result = body(&value)
            if let value {
                try Contents.writeSet(key, value, to: &writer)
            } else if old != nil {
                try Contents.writeRemove(key, to: &writer)
            }
            return result
        }
    }

    /// Reads and changes the value for `key` atomically, starting from `defaultValue` if there is
    /// none (``update(_:_:)`` for counters and accumulators).
    ///
    /// ```swift
    /// try hits.update(page, default: 0) { $0 += 1 }
    /// ```
    @discardableResult
    @inlinable
    public func update<Result: Sendable>(
        _ key: Key, default defaultValue: @autoclosure () -> Value, _ body: (inout Value) -> Result
    ) throws(ManagerError) -> Result {
        try update(key) { (value: inout Value?) -> Result in
            var current = value ?? defaultValue()
            defer { value = current }
            return body(&current)
        }
    }

    /// Reads and changes several entries together, atomically: `body` gets a dictionary holding
    /// the current entries for `keys` (those that exist), and whatever it leaves there for those
    /// keys is written back; keys it removes are removed. Entries for other keys are ignored.
    /// `body` runs holding the dictionary's lock: keep it short, and do not use this container
    /// inside it (that would wait for itself).
    ///
    /// ```swift
    /// try accounts.update(keys: ["ann", "bob"]) { $0["ann"]! -= 10; $0["bob"]! += 10 }
    /// ```
    @discardableResult
    @inlinable
    public func update<Result: Sendable>(keys: some Sequence<Key>, _ body: (inout [Key: Value]) -> Result)
        throws(ManagerError) -> Result
    {
        let keys = Set(keys)
        return try log.write { contents, writer throws(ManagerError) in
            var selected: [Key: Value] = [:]
            for key in keys { selected[key] = contents.entries[key] }
            let result = body(&selected)
            for key in keys {
                if let value = selected[key] {
                    try Contents.writeSet(key, value, to: &writer)
                } else if contents.entries[key] != nil {
                    try Contents.writeRemove(key, to: &writer)
                }
            }
            return result
        }
    }

    // MARK: Handles

    /// Encodes the handle: the shared memory (its descriptor travels with the message) and what
    /// it holds. Works inside a task given to a child or a message sent over a
    /// ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws { try log.encode(to: encoder) }

    /// Maps a dictionary sent by another process. Throws ``ManagerError/corrupted(_:)`` if it
    /// was sent as another kind of container or with other key or value types.
    public convenience init(from decoder: any Decoder) throws {
        self.init(log: try OperationLog(from: decoder, kind: .dictionary))
    }

}

extension SharedDictionary where Value: Equatable {
    /// Changes the whole dictionary atomically: `body` gets all entries and may change them in
    /// any way; only the entries that differ afterwards are written. `body` runs holding the
    /// dictionary's lock: keep it short, and do not use this container inside it (that would
    /// wait for itself).
    @discardableResult
    @inlinable
    public func modify<Result: Sendable>(_ body: (inout [Key: Value]) -> Result) throws(ManagerError)
        -> Result
    {
        try log.write { contents, writer throws(ManagerError) in
            var entries = contents.entries
            let result = body(&entries)
            if entries.isEmpty && !contents.entries.isEmpty {
                try writer.entry(Contents.removeAllOperation)
                return result
            }
            for key in contents.entries.keys where entries[key] == nil {
                try Contents.writeRemove(key, to: &writer)
            }
            for (key, value) in entries where contents.entries[key] != value {
                try Contents.writeSet(key, value, to: &writer)
            }
            return result
        }
    }
}

extension SharedDictionary {
    /// The entries, as every process rebuilds them from the log.
    @usableFromInline
    struct Contents: LogState {
        @inlinable static var setOperation: UInt32 { 1 }
        @inlinable static var removeOperation: UInt32 { 2 }
        @inlinable static var removeAllOperation: UInt32 { 3 }

        @usableFromInline var entries: [Key: Value] = [:]

        @inlinable init() {}

        @inlinable mutating func apply(_ entry: inout LogEntry) throws(ManagerError) {
            switch entry.operation {
            case Self.setOperation:
                let key = try entry.prefixed(Key.self)
                entries[key] = try entry.rest(Value.self)
            case Self.removeOperation:
                entries.removeValue(forKey: try entry.rest(Key.self))
            case Self.removeAllOperation:
                entries.removeAll()
            default:
                throw entry.unknownOperation
            }
        }

        @inlinable func writeSnapshot(to writer: inout LogEntryWriter) throws(ManagerError) {
            for (key, value) in entries { try Self.writeSet(key, value, to: &writer) }
        }

        @inlinable static func writeSet(_ key: Key, _ value: Value, to writer: inout LogEntryWriter)
            throws(ManagerError)
        {
            try writer.entry(setOperation) { (writer) throws(ManagerError) in
                try writer.appendPrefixed(key)
                try writer.append(value)
            }
        }

        @inlinable static func writeRemove(_ key: Key, to writer: inout LogEntryWriter) throws(ManagerError) {
            try writer.entry(removeOperation) { (writer) throws(ManagerError) in try writer.append(key) }
        }
    }
}
