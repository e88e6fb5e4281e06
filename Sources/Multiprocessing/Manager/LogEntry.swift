/// One entry of a shared container's operation log, read from a local copy of the log (see
/// ``LogEntryWriter`` for the layout). Every read is bounds-checked: a damaged log is reported
/// as ``ManagerError/corrupted(_:)``, never read past.
struct LogEntry {
    let operation: UInt32
    private let payload: UnsafeRawBufferPointer
    private let decoder: BinaryDecoder
    private var offset = 0

    init(operation: UInt32, payload: UnsafeRawBufferPointer, decoder: BinaryDecoder) {
        self.operation = operation
        self.payload = payload
        self.decoder = decoder
    }

    /// Reads an 8-byte integer written by ``LogEntryWriter/appendWord(_:)``.
    mutating func word() throws(ManagerError) -> Int {
        guard payload.count - offset >= 8 else { throw .corrupted("log entry too short for an index") }
        let value = payload.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
        offset += 8
        return Int(truncatingIfNeeded: UInt64(littleEndian: value))
    }

    /// Decodes a value written by ``LogEntryWriter/appendPrefixed(_:)``.
    mutating func prefixed<T: Decodable>(_: T.Type) throws(ManagerError) -> T {
        guard payload.count - offset >= 4 else { throw .corrupted("log entry too short for a length") }
        let length = Int(UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        offset += 4
        guard payload.count - offset >= length else { throw .corrupted("log entry value overruns the entry") }
        let value = try decode(T.self, UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + length)]))
        offset += length
        return value
    }

    /// Decodes a value written by ``LogEntryWriter/append(_:)`` as the rest of the payload.
    mutating func rest<T: Decodable>(_: T.Type) throws(ManagerError) -> T {
        let value = try decode(T.self, UnsafeRawBufferPointer(rebasing: payload[offset...]))
        offset = payload.count
        return value
    }

    private func decode<T: Decodable>(_: T.Type, _ bytes: UnsafeRawBufferPointer) throws(ManagerError) -> T {
        do {
            return try decoder.decode(T.self, from: bytes)
        } catch {
            throw .codec(error)
        }
    }

    /// Calls `body` with each entry in `log` (whole entries, back to back) and the offset just
    /// past it, in order.
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
    var unknownOperation: ManagerError { .corrupted("unknown log operation \(operation)") }
}
