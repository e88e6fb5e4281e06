/// A failure of ``BinaryEncoder`` or ``BinaryDecoder``.
///
/// Every error that leaves the codec is one of these cases: malformed input is reported
/// precisely, and errors thrown by user `encode(to:)` / `init(from:)` code are wrapped in
/// ``encodingFailed(_:)`` or ``decodingFailed(_:)`` with their description.
public enum CodecError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The input ended early: a value needed `needed` bytes but only `available` remained.
    case truncated(needed: Int, available: Int)
    /// A length or count prefix is larger than the decoder accepts (the claimed value,
    /// clamped to `Int.max`).
    case lengthTooLarge(Int)
    /// The bytes are well-formed but their value is not acceptable: a Bool byte other than
    /// 0 or 1, invalid UTF-8, an integer out of range for the requested type, a bad tag.
    case invalidValue(String)
    /// The bytes do not have the shape the requested type needs.
    case typeMismatch(expected: String, codingPath: String)
    /// A keyed container has no entry for the key; `codingPath` names the container.
    case keyNotFound(String, codingPath: String)
    /// Values nest deeper than the encoder's or decoder's `maximumDepth` (`limit`): a hostile or
    /// corrupt input, a reference cycle, or data deeper than the limit allows.
    case nestingTooDeep(limit: Int)
    /// A complete top-level value was decoded but this many bytes were left over.
    case trailingBytes(Int)
    /// An `encode(to:)` implementation threw; the payload is that error's description.
    case encodingFailed(String)
    /// An `init(from:)` implementation threw; the payload is that error's description.
    case decodingFailed(String)

    /// A one-line, human-readable account of the failure.
    public var description: String {
        switch self {
        case .truncated(let needed, let available):
            return "truncated input: needed \(needed) byte(s), \(available) available"
        case .lengthTooLarge(let length):
            return "length prefix too large: \(length)"
        case .invalidValue(let detail):
            return "invalid value: \(detail)"
        case .typeMismatch(let expected, let codingPath):
            return "type mismatch: expected \(expected) at \(Self.render(codingPath))"
        case .keyNotFound(let key, let codingPath):
            return "key '\(key)' not found at \(Self.render(codingPath))"
        case .nestingTooDeep(let limit):
            return
                "values nest deeper than \(limit) levels (each optional, array, collection and struct, enum or class value is a level)"
        case .trailingBytes(let count):
            return "\(count) trailing byte(s) after the top-level value"
        case .encodingFailed(let detail):
            return "encoding failed: \(detail)"
        case .decodingFailed(let detail):
            return "decoding failed: \(detail)"
        }
    }

    private static func render(_ path: String) -> String {
        path.isEmpty ? "<root>" : path
    }

    /// Fills in the coding path of path-carrying cases, which are created deep inside the
    /// decoder before the path is known.
    func withCodingPath(_ path: String) -> CodecError {
        switch self {
        case .typeMismatch(let expected, let old) where old.isEmpty:
            return .typeMismatch(expected: expected, codingPath: path)
        case .keyNotFound(let key, let old) where old.isEmpty:
            return .keyNotFound(key, codingPath: path)
        default:
            return self
        }
    }
}
