/// Makes shared containers — dictionaries, lists, sets and namespaces of `Codable` values that
/// every process holding their handles can read and change (CPython's
/// `multiprocessing.Manager()`).
///
/// Unlike CPython's manager there is no server process to start, shut down or lose: each
/// container lives in its own shared memory, as a log of changes that every process replays
/// into a copy of its own. A read that finds nothing new costs tens of nanoseconds (no lock, no
/// system call); a change, well under a microsecond. The memory goes away with the last handle,
/// in whichever process that is.
///
/// ```swift
/// let manager = Manager()
/// let list = try manager.list([1, 2, 3])
/// let dictionary = try manager.dictionary([String: Double].self)
/// // Pass `list` and `dictionary` to children as stored properties of their tasks.
/// ```
///
/// A `Manager` only holds defaults for the containers it makes; it can be copied and dropped
/// freely.
public struct Manager: Sendable, Hashable {
    /// The default ``capacity``: 32 MiB.
    public static let defaultCapacity = 32 << 20
    /// The smallest capacity accepted: 256 bytes.
    public static let minimumCapacity = 256
    /// The largest capacity accepted: 16 GiB.
    public static let maximumCapacity = 1 << 34

    /// The size in bytes of each container's log of changes. A container's contents, written
    /// compactly, must fit in it (with room to spare, or writes slow down as the log is rewritten
    /// more and more often); a change that does not fit throws
    /// ``ManagerError/capacityExceeded(needed:capacity:)``.
    ///
    /// Memory is reserved, not used: a container's segment (twice the capacity) only takes
    /// memory for the pages its contents have touched.
    public var capacity: Int

    /// A manager whose containers have logs of `capacity` bytes.
    public init(capacity: Int = Manager.defaultCapacity) {
        self.capacity = capacity
    }

    /// A new shared dictionary holding `contents` (CPython's `manager.dict(contents)`).
    public func dictionary<Key, Value>(_ contents: [Key: Value] = [:]) throws(ManagerError)
        -> SharedDictionary<Key, Value>
    {
        try SharedDictionary(contents, capacity: capacity)
    }

    /// A new, empty shared dictionary of this type: `try manager.dictionary([String: Int].self)`.
    public func dictionary<Key, Value>(_ type: [Key: Value].Type) throws(ManagerError)
        -> SharedDictionary<Key, Value>
    {
        try SharedDictionary(capacity: capacity)
    }

    /// A new shared list holding `elements` (CPython's `manager.list(elements)`).
    public func list<Element>(_ elements: [Element] = []) throws(ManagerError) -> SharedList<Element> {
        try SharedList(elements, capacity: capacity)
    }

    /// A new, empty shared list of this type: `try manager.list([String].self)`.
    public func list<Element>(_ type: [Element].Type) throws(ManagerError) -> SharedList<Element> {
        try SharedList(capacity: capacity)
    }

    /// A new shared set holding `elements`.
    public func set<Element>(_ elements: Set<Element> = []) throws(ManagerError) -> SharedSet<Element> {
        try SharedSet(elements, capacity: capacity)
    }

    /// A new, empty shared set of this type: `try manager.set(Set<String>.self)`.
    public func set<Element>(_ type: Set<Element>.Type) throws(ManagerError) -> SharedSet<Element> {
        try SharedSet(capacity: capacity)
    }

    /// A new, empty shared namespace (CPython's `manager.Namespace()`).
    public func namespace() throws(ManagerError) -> SharedNamespace {
        try SharedNamespace(capacity: capacity)
    }
}
