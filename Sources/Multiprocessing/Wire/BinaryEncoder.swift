// Wire format (little-endian, no type tags: the reader must know the type, as with Codable):
//
// - Bool: one byte, 0 or 1. UInt8 / Int8: one raw byte.
// - Other integers: LEB128 varint; signed ones zigzag-encoded first (Int128: up to 19 bytes).
// - Float / Double: 4 / 8 bytes, the IEEE bit pattern (NaN payloads and -0 survive).
// - String: varint byte count, then UTF-8.
// - Optional (whenever it passes through the codec generically): 0 = nil, 1 then the value.
// - nil written with `encodeNil()` in a positional container: one 0 byte.
// - Unkeyed container: varint count, then the elements.
// - Arrays (also ArraySlice, ContiguousArray) of Bool, Float, Double and fixed-width integers:
//   varint count, then the elements' raw little-endian memory (Int/UInt as 8 bytes).
// - Keyed container: entries, then a 0 byte. Entry = key header, value header, value.
//   Key header: first byte = bit 0 (1: Int key, 0: String key) | 6 payload bits << 1 |
//   0x80 if a varint with the payload's remaining bits follows. Int key payload: zigzag of the
//   Int. String key payload: UTF-8 count + 1, then the UTF-8 (so a 0 byte ends the container).
//   Value header: varint, 0 = nil, otherwise the value's byte length + 1, which lets a decoder
//   skip entries and read keys in any order.
// - superEncoder of an unkeyed container: a value header, then the value.
// - An `encode(to:)` that writes nothing writes an empty keyed container (one 0 byte), so
//   every value takes at least one byte and counts can be checked against remaining bytes.

/// Encodes `Encodable` values into a compact binary form that ``BinaryDecoder`` reads back.
///
/// The format is positional, like the Codable calls that produce it: integers are varints,
/// floating-point values are their exact bit patterns, keyed containers carry their keys so
/// that `init(from:)` may read them in any order, and arrays of plain numbers are copied in
/// bulk. Decoding must use the same types that encoding used.
///
/// ```swift
/// let bytes = try BinaryEncoder().encode(["a": [1.0, 2.5]])
/// let back = try BinaryDecoder().decode([String: [Double]].self, from: bytes)
/// ```
public struct BinaryEncoder: Sendable {
    /// Values made available to `encode(to:)` implementations through `Encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// How deeply values may nest before encoding fails with
    /// ``CodecError/nestingTooDeep(limit:)`` instead of overflowing the stack (for instance on a
    /// reference cycle between classes). Levels are counted as the decoder counts them (see
    /// ``BinaryDecoder/maximumDepth``) and the defaults match, so whatever encodes decodes.
    public var maximumDepth: Int = 32

    /// Creates an encoder with no user info.
    public init() {}

    /// Encodes `value` into a new byte array.
    ///
    /// - Throws: ``CodecError/encodingFailed(_:)`` when an `encode(to:)` implementation throws.
    public func encode<T: Encodable>(_ value: T) throws(CodecError) -> [UInt8] {
        var bytes: [UInt8] = []
        if T.self == String.self {
            // One exact allocation instead of growing past the varint.
            bytes.reserveCapacity(unsafeBitCast(value, to: String.self).utf8.count + 10)
        }
        try encode(value, appendingTo: &bytes)
        return bytes
    }

    /// Encodes `value` at the end of `buffer`, reusing its capacity.
    ///
    /// On failure `buffer` is left as it was.
    ///
    /// - Throws: ``CodecError/encodingFailed(_:)`` when an `encode(to:)` implementation throws.
    public func encode<T: Encodable>(_ value: T, appendingTo buffer: inout [UInt8]) throws(CodecError) {
        // Plain values need no encoder object at all.
        if WireWriter.appendPrimitive(value, to: &buffer) { return }
        // Plain-number arrays: a varint count and the memory, exactly as the encoder writes them.
        let id = ObjectIdentifier(T.self)
        if id == PlainArrays.int { return Self.appendRaw(unsafeBitCast(value, to: [Int].self), to: &buffer) }
        if id == PlainArrays.double {
            return Self.appendRaw(unsafeBitCast(value, to: [Double].self), to: &buffer)
        }
        if id == PlainArrays.int64 {
            return Self.appendRaw(unsafeBitCast(value, to: [Int64].self), to: &buffer)
        }
        if id == PlainArrays.int32 {
            return Self.appendRaw(unsafeBitCast(value, to: [Int32].self), to: &buffer)
        }
        let start = buffer.count
        let core = BinaryEncodingCore(userInfo: userInfo, maximumDepth: maximumDepth)
        swap(&core.bytes, &buffer)
        do {
            try core.encodeValue(value)
            core.close(to: 0)
        } catch {
            swap(&core.bytes, &buffer)
            buffer.removeLast(buffer.count - start)
            throw Self.codecError(from: error)
        }
        swap(&core.bytes, &buffer)
    }

    private static func appendRaw<E>(_ values: [E], to buffer: inout [UInt8]) {
        WireWriter.appendVarint(UInt64(values.count), to: &buffer)
        values.withUnsafeBytes { buffer.append(contentsOf: $0) }
    }

    private static func codecError(from error: any Error) -> CodecError {
        if let error = error as? CodecError { return error }
        if let error = error as? EncodingError {
            switch error {
            case .invalidValue(let value, let context):
                let path = renderCodingPath(context.codingPath)
                return .encodingFailed(
                    "invalid value \(value) at \(path.isEmpty ? "<root>" : path): \(context.debugDescription)"
                )
            @unknown default:
                return .encodingFailed(String(describing: error))
            }
        }
        return .encodingFailed(String(describing: error))
    }
}
