/// One entry of a shared container's operation log, read from a local copy of the log (see
/// ``LogEntryWriter`` for the layout). Every read is bounds-checked: a damaged log is reported
/// as ``ManagerError/corrupted(_:)``, never read past.
@usableFromInline
struct LogEntry {
    @usableFromInline let operation: UInt32
    @usableFromInline let payload: UnsafeRawBufferPointer
    @usableFromInline let decoder: BinaryDecoder
    @usableFromInline var offset = 0

    @inlinable
    init(operation: UInt32, payload: UnsafeRawBufferPointer, decoder: BinaryDecoder) {
        self.operation = operation
        self.payload = payload
        self.decoder = decoder
    }

    /// Reads an 8-byte integer written by ``LogEntryWriter/appendWord(_:)``.
    @inlinable
    mutating func word() throws(ManagerError) -> Int {
        guard payload.count - offset >= 8 else { throw .corrupted("log entry too short for an index") }
        let value = payload.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return Int(truncatingIfNeeded: UInt64(littleEndian: value))
    }

    /// Decodes a value written by ``LogEntryWriter/appendPrefixed(_:)``.
    @inlinable
    mutating func prefixed<T: Decodable>(_: T.Type) throws(ManagerError) -> T {
        guard payload.count - offset >= 4 else { throw .corrupted("log entry too short for a length") }
        let length = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        offset += 4
        guard payload.count - offset >= length else { throw .corrupted("log entry value overruns the entry") }
        let value = try Self.decode(
            T.self, UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]), decoder)
        offset += length
        return value
    }

    /// Decodes a value written by ``LogEntryWriter/append(_:)`` as the rest of the payload.
    @inlinable
    mutating func rest<T: Decodable>(_: T.Type) throws(ManagerError) -> T {
        let value = try Self.decode(T.self, UnsafeRawBufferPointer(rebasing: payload[offset...]), decoder)
        offset = payload.count
        return value
    }

    /// Decodes `bytes` as exactly one `T`; integers and strings without a decoder object.
    @inlinable
    static func decode<T: Decodable>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ decoder: BinaryDecoder)
        throws(ManagerError) -> T
    {
        if T.self == Int.self { return unsafeBitCast(try decodeInt(bytes), to: T.self) }
        if T.self == String.self { return unsafeBitCast(try decodeString(bytes), to: T.self) }
        do {
            return try decoder.decode(T.self, from: bytes)
        } catch {
            throw .codec(error)
        }
    }

    /// An `Int` as the codec writes it (a zigzag varint) spanning all of `bytes`.
    @usableFromInline
    static func decodeInt(_ bytes: UnsafeRawBufferPointer) throws(ManagerError) -> Int {
        var position = 0
        let raw: UInt64
        do {
            raw = try WireReader.varint(in: bytes, at: &position)
        } catch {
            throw .codec(error)
        }
        guard position == bytes.count else { throw .codec(.trailingBytes(bytes.count - position)) }
        return Int(WireWriter.unzigzag(raw))
    }

    /// A `String` as the codec writes it (a varint length, then UTF-8) spanning all of `bytes`.
    @usableFromInline
    static func decodeString(_ bytes: UnsafeRawBufferPointer) throws(ManagerError) -> String {
        var position = 0
        let count: UInt64
        do {
            count = try WireReader.varint(in: bytes, at: &position)
        } catch {
            throw .codec(error)
        }
        let available = bytes.count - position
        guard count <= UInt64(available) else {
            throw .codec(.truncated(needed: Int(clamping: count), available: available))
        }
        guard Int(count) == available else { throw .codec(.trailingBytes(available - Int(count))) }
        guard
            let string = String(
                validating: UnsafeRawBufferPointer(rebasing: bytes[position...]), as: UTF8.self)
        else {
            throw .codec(.invalidValue("string is not valid UTF-8"))
        }
        return string
    }

    /// Calls `body` with each entry in `log` (whole entries, back to back) and the offset just
    /// past it, in order.
    @inlinable
    static func forEach(
        in log: UnsafeRawBufferPointer, decoder: BinaryDecoder,
        _ body: (inout LogEntry, _ end: Int) throws(ManagerError) -> Void
    ) throws(ManagerError) {
        var offset = 0
        while offset < log.count {
            guard log.count - offset >= LogEntryWriter.headerSize else {
                throw .corrupted("truncated log entry header at \(offset)")
            }
            let length = Int(UInt32(littleEndian: log.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let operation = UInt32(
                littleEndian: log.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            let start = offset + LogEntryWriter.headerSize
            let end = start + (length + 7) / 8 * 8
            guard end <= log.count else { throw .corrupted("log entry at \(offset) overruns the log") }
            var entry = LogEntry(
                operation: operation,
                payload: UnsafeRawBufferPointer(rebasing: log[start..<(start + length)]),
                decoder: decoder)
            try body(&entry, end)
            offset = end
        }
    }

    /// The error for an operation code a container does not know.
    @inlinable
    var unknownOperation: ManagerError { .corrupted("unknown log operation \(operation)") }
}
