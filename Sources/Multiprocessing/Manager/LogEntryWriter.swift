/// Encodes entries of a shared container's operation log into a local buffer, ready to be
/// copied into the shared log in one piece.
///
/// An entry is `[payload length: UInt32][operation: UInt32][payload][zero padding to 8 bytes]`,
/// so every entry (and every log length) is a whole number of 8-byte words. Payloads are written
/// with the ``BinaryEncoder``.
@usableFromInline
struct LogEntryWriter: Sendable {
    @inlinable static var headerSize: Int { 8 }

    @usableFromInline var bytes: [UInt8] = []
    @usableFromInline let encoder = BinaryEncoder()

    @inlinable init() {}

    @inlinable var isEmpty: Bool { bytes.isEmpty }
    @inlinable var count: Int { bytes.count }

    @inlinable mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Appends an entry whose payload `body` writes with the `append…` methods below.
    @inlinable
    mutating func entry(
        _ operation: UInt32, _ body: (inout LogEntryWriter) throws(ManagerError) -> Void = { _ in }
    ) throws(ManagerError) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: Self.headerSize))
        do {
            try body(&self)
        } catch {
            bytes.removeSubrange(start...)
            throw error
        }
        let payload = bytes.count - start - Self.headerSize
        guard payload <= Int(UInt32.max) else {
            bytes.removeSubrange(start...)
            throw .capacityExceeded(needed: payload, capacity: Int(UInt32.max))
        }
        store(UInt32(payload), at: start)
        store(operation, at: start + 4)
        let padding = (8 - bytes.count % 8) % 8
        bytes.append(contentsOf: repeatElement(0, count: padding))
    }

    /// Appends an 8-byte little-endian integer (an index) to the payload.
    @inlinable
    mutating func appendWord(_ value: Int) {
        withUnsafeBytes(of: UInt64(truncatingIfNeeded: value).littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Appends `value`, encoded, as the rest of the payload.
    @inlinable
    mutating func append<T: Encodable>(_ value: T) throws(ManagerError) {
        do {
            try encoder.encode(value, appendingTo: &bytes)
        } catch {
            throw .codec(error)
        }
    }

    /// Appends `value`, encoded, after its byte length (so that something can follow it).
    @inlinable
    mutating func appendPrefixed<T: Encodable>(_ value: T) throws(ManagerError) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: 4))
        try append(value)
        let length = bytes.count - start - 4
        guard length <= Int(UInt32.max) else {
            throw .capacityExceeded(needed: length, capacity: Int(UInt32.max))
        }
        store(UInt32(length), at: start)
    }

    @inlinable
    mutating func store(_ value: UInt32, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { source in
            for i in 0..<4 { bytes[offset + i] = source[i] }
        }
    }
}
