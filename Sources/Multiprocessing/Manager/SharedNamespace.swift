/// Named attributes of any `Codable` types that every process holding the handle can read and
/// change (CPython's `Manager().Namespace()`), without a server process.
///
/// Each attribute remembers the type of the value last stored in it: reading it as another
/// type throws ``ManagerError/typeMismatch(name:stored:requested:)`` instead of misreading the
/// bytes. Attributes read and write like properties, with the type taken from the context, or
/// through the throwing methods:
///
/// ```swift
/// let ns = try Manager().namespace()
/// ns.x = 1                                   // dynamic member (stops the program on an error)
/// ns["label"] = "first run"
/// let x: Int? = ns.x
/// try ns.set("y", to: [1.5, 2.5])            // the throwing forms
/// let y = try ns.value("y", as: [Double].self)
/// try ns.update("x", default: 0) { $0 += 1 }  // atomic read-modify-write
/// ```
///
/// Pass the namespace to a child as a stored property of its task.
@dynamicMemberLookup
public final class SharedNamespace: Sendable, Codable {
    /// One attribute: the value's type and its encoded bytes.
    @usableFromInline
    struct Attribute: Codable, Sendable, Equatable {
        var type: String
        var bytes: [UInt8]
    }

    @usableFromInline let storage: SharedDictionary<String, Attribute>

    /// A new, empty namespace whose log has room for `capacity` bytes (see
    /// ``Manager/capacity``).
    public init(capacity: Int = Manager.defaultCapacity) throws(ManagerError) {
        storage = SharedDictionary(log: try OperationLog(kind: .namespace, capacity: capacity))
    }

    /// The size in bytes of the shared log: the attributes, written compactly, must fit in it.
    public var capacity: Int { storage.capacity }

    // MARK: Reading

    /// The value of attribute `name`, or `nil` if it has none. Throws
    /// ``ManagerError/typeMismatch(name:stored:requested:)`` if it holds another type.
    @inlinable
    public func value<T: Codable & Sendable>(_ name: String, as type: T.Type = T.self) throws(ManagerError)
        -> T?
    {
        guard let attribute = try storage.value(forKey: name) else { return nil }
        return try Self.decode(attribute, name, as: T.self)
    }

    /// Whether attribute `name` has a value.
    @inlinable
    public func contains(_ name: String) throws(ManagerError) -> Bool { try storage.contains(name) }

    /// The names of the attributes that have values, sorted.
    @inlinable
    public var names: [String] {
        get throws(ManagerError) { try storage.keys.sorted() }
    }

    /// The number of attributes that have values.
    @inlinable
    public var count: Int {
        get throws(ManagerError) { try storage.count }
    }

    /// Attribute `name`, of the type the context asks for; assigning `nil` is not possible (the
    /// type could not be told): use ``removeValue(_:)``. Stops the program on a
    /// ``ManagerError``, a type mismatch included: use ``value(_:as:)`` and ``set(_:to:)`` to
    /// handle one.
    @inlinable
    public subscript<T: Codable & Sendable>(name: String) -> T? {
        get { ManagerError.trapping(Self.self) { () throws(ManagerError) in try value(name, as: T.self) } }
        set {
            ManagerError.trapping(Self.self) { () throws(ManagerError) in
                if let newValue { try set(name, to: newValue) } else { try removeValue(name) }
            }
        }
    }

    /// Attribute `name` as a property: `ns.count = 3`, `let count: Int? = ns.count`. The same
    /// as ``subscript(_:)``.
    @inlinable
    public subscript<T: Codable & Sendable>(dynamicMember name: String) -> T? {
        get { self[name] }
        set { self[name] = newValue }
    }

    // MARK: Writing

    /// Sets attribute `name` to `value` (of any type, whatever it held before).
    @inlinable
    public func set<T: Codable & Sendable>(_ name: String, to value: T) throws(ManagerError) {
        try storage.updateValue(try Self.encode(value), forKey: name)
    }

    /// Removes attribute `name`; returns whether it had a value.
    @discardableResult
    @inlinable
    public func removeValue(_ name: String) throws(ManagerError) -> Bool {
        try storage.removeValue(forKey: name) != nil
    }

    /// Reads and changes attribute `name` atomically: `body` gets its value (`nil` if none) and
    /// may change, set or remove it; no other process changes the namespace meanwhile. Throws
    /// ``ManagerError/typeMismatch(name:stored:requested:)`` (without calling `body`) if it holds
    /// another type. `body` runs holding the namespace's lock: keep it short, and do not use
    /// this container inside it (that would wait for itself).
    @discardableResult
    @inlinable
    public func update<T: Codable & Sendable, Result: Sendable>(
        _ name: String, as type: T.Type = T.self, _ body: (inout T?) -> Result
    ) throws(ManagerError) -> Result {
        try storage.log.write { contents, writer throws(ManagerError) in
            let old = contents.entries[name]
            var value = try old.map { (attribute) throws(ManagerError) in
                try Self.decode(attribute, name, as: T.self)
            }
            let result = body(&value)
            if let value {
                try SharedDictionary<String, Attribute>.Contents.writeSet(
                    name, try Self.encode(value), to: &writer)
            } else if old != nil {
                try SharedDictionary<String, Attribute>.Contents.writeRemove(name, to: &writer)
            }
            return result
        }
    }

    /// Reads and changes attribute `name` atomically, starting from `defaultValue` if it has
    /// none.
    ///
    /// ```swift
    /// try ns.update("finished", default: 0) { $0 += 1 }
    /// ```
    @discardableResult
    @inlinable
    public func update<T: Codable & Sendable, Result: Sendable>(
        _ name: String, default defaultValue: @autoclosure () -> T, _ body: (inout T) -> Result
    ) throws(ManagerError) -> Result {
        try update(name, as: T.self) { (value: inout T?) -> Result in
            var current = value ?? defaultValue()
            defer { value = current }
            return body(&current)
        }
    }

    /// Removes every attribute.
    @inlinable
    public func removeAll() throws(ManagerError) { try storage.removeAll() }

    // MARK: Handles

    /// Encodes the handle: the shared memory (its descriptor travels with the message). Works
    /// inside a task given to a child or a message sent over a ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws { try storage.encode(to: encoder) }

    /// Maps a namespace sent by another process.
    public init(from decoder: any Decoder) throws {
        storage = SharedDictionary(log: try OperationLog(from: decoder, kind: .namespace))
    }

    @usableFromInline
    static func encode<T: Codable>(_ value: T) throws(ManagerError) -> Attribute {
        do {
            return Attribute(type: String(reflecting: T.self), bytes: try BinaryEncoder().encode(value))
        } catch {
            throw .codec(error)
        }
    }

    @usableFromInline
    static func decode<T: Codable>(_ attribute: Attribute, _ name: String, as _: T.Type)
        throws(ManagerError) -> T
    {
        let requested = String(reflecting: T.self)
        guard attribute.type == requested else {
            throw .typeMismatch(name: name, stored: attribute.type, requested: requested)
        }
        do {
            return try BinaryDecoder().decode(T.self, from: attribute.bytes)
        } catch {
            throw .codec(error)
        }
    }

}
