/// Reads the wire's building blocks — LEB128 varints, fixed32 lengths, length-prefixed bytes and
/// strings, blobs — outside a decoder: the top-level fast paths, the pool protocol (see
/// ``PoolWire``) and the manager's log. Every read is bounds-checked and fails with a typed
/// error. ``WireWriter`` writes what this reads.
struct WireReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }

    /// The byte after the next varint, without moving; `nil` at the end.
    func byteAfterVarint() -> UInt8? {
        var p = position
        while p < bytes.count, bytes[p] & 0x80 != 0 { p += 1 }
        p += 1
        return p < bytes.count ? bytes[p] : nil
    }

    mutating func byte() throws(CodecError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(needed: 1, available: 0) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint() throws(CodecError) -> UInt64 {
        var p = position
        let result = bytes.withUnsafeBytes { raw -> Result<UInt64, CodecError> in
            do throws(CodecError) {
                return .success(try Self.varint(in: raw, at: &p))
            } catch {
                return .failure(error)
            }
        }
        position = p
        return try result.get()
    }

    mutating func fixed32() throws(CodecError) -> UInt32 {
        guard bytes.count - position >= 4 else {
            throw .truncated(needed: 4, available: bytes.count - position)
        }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[position + i]) << (8 * i) }
        position += 4
        return value
    }

    /// A varint count that cannot exceed the bytes left (every counted thing takes a byte).
    mutating func count() throws(CodecError) -> Int {
        let value = try varint()
        guard value <= UInt64(bytes.count - position) else { throw .lengthTooLarge(Int(clamping: value)) }
        return Int(value)
    }

    /// A blob's place in the bytes: a fixed32 length, then that many bytes (see
    /// ``WireWriter/appendBlob(_:to:)``).
    mutating func blob() throws(CodecError) -> Range<Int> {
        let n = Int(try fixed32())
        guard n <= bytes.count - position else { throw .lengthTooLarge(n) }
        defer { position += n }
        return position..<(position + n)
    }

    /// Bytes behind a varint length (see ``WireWriter/appendBytes(_:to:)``).
    mutating func data() throws(CodecError) -> [UInt8] {
        let n = try count()
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    /// UTF-8 behind a varint length, as the codec writes a `String`.
    mutating func string() throws(CodecError) -> String {
        let raw = try data()
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidValue("invalid UTF-8") }
        return text
    }

    /// The varint at `position`, which moves past it.
    static func varint(in bytes: UnsafeRawBufferPointer, at position: inout Int) throws(CodecError) -> UInt64
    {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var p = position
        while true {
            guard p < bytes.count else {
                throw .truncated(needed: p - position + 1, available: bytes.count - position)
            }
            let byte = bytes[p]
            p += 1
            if shift == 63 && byte > 1 { throw .invalidValue("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 {
                position = p
                return result
            }
            shift += 7
        }
    }
}
