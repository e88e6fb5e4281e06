/// Why an operation on a ``SharedDictionary``, ``SharedList``, ``SharedSet`` or
/// ``SharedNamespace`` did not complete.
///
/// A change that throws ``capacityExceeded(needed:capacity:)``,
/// ``indexOutOfRange(index:count:)``, ``typeMismatch(name:stored:requested:)`` or an encoding
/// ``codec(_:)`` error has written nothing. A decoding ``codec(_:)`` error means a change made by
/// some process (possibly this call's own) cannot be read back here; ``corrupted(_:)`` means the
/// shared memory cannot be trusted.
public enum ManagerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The contents, written compactly, plus this change need `needed` bytes but the container
    /// was made with a log of `capacity` bytes. Make it with a larger capacity
    /// (``Manager/init(capacity:)``).
    case capacityExceeded(needed: Int, capacity: Int)
    /// A capacity outside what containers accept (see ``Manager/minimumCapacity`` and
    /// ``Manager/maximumCapacity``).
    case invalidCapacity(Int)
    /// `index` is not a valid position in a list of `count` elements (at the moment of the
    /// operation: other processes may have changed the count since you last looked).
    case indexOutOfRange(index: Int, count: Int)
    /// A ``SharedNamespace`` attribute holds a value of another type than the one asked for.
    case typeMismatch(name: String, stored: String, requested: String)
    /// A key or value could not be encoded, or a change written by another process could not be
    /// decoded (a type whose `init(from:)` rejects what its `encode(to:)` wrote).
    case codec(CodecError)
    /// The shared memory does not hold what the handle describes: a handle decoded as another
    /// type, or memory overwritten by something else.
    case corrupted(String)
    /// The container's shared memory could not be made or mapped.
    case memory(SharedMemoryError)

    /// A sentence for logs.
    public var description: String {
        switch self {
        case .capacityExceeded(let needed, let capacity):
            "shared container full: \(needed) bytes needed, capacity \(capacity) bytes"
        case .invalidCapacity(let capacity): "invalid shared container capacity \(capacity)"
        case .indexOutOfRange(let index, let count): "index \(index) out of range for \(count) elements"
        case .typeMismatch(let name, let stored, let requested):
            "attribute \"\(name)\" holds a \(stored), not a \(requested)"
        case .codec(let error): "shared container codec: \(error)"
        case .corrupted(let what): "shared container corrupted: \(what)"
        case .memory(let error): "\(error)"
        }
    }
}

extension ManagerError {
    /// Runs `body` for the non-throwing conveniences (subscripts, iteration), which stop the
    /// program on an error the way `Array`'s subscript does.
    @discardableResult
    @inlinable
    static func trapping<T>(_ container: Any.Type, _ body: () throws(ManagerError) -> T) -> T {
        do {
            return try body()
        } catch {
            fatalError("\(container): \(error)")
        }
    }
}
