struct BinarySingleValueEncodingContainer: SingleValueEncodingContainer {
    let core: BinaryEncodingCore
    /// Containers at or above this depth belong to the value being written (-1: dead).
    let base: Int

    var codingPath: [any CodingKey] { [] }

    @inline(__always)
    private func activate() throws {
        guard base >= 0, base <= core.open.count else {
            throw CodecError.encodingFailed("a single-value container was used after it was closed")
        }
        if core.open.count > base { core.close(to: base) }
    }

    mutating func encodeNil() throws {
        try activate()
        core.bytes.append(0)
    }

    mutating func encode(_ value: Bool) throws { try encodeValue(value) }
    mutating func encode(_ value: String) throws { try encodeValue(value) }
    mutating func encode(_ value: Double) throws { try encodeValue(value) }
    mutating func encode(_ value: Float) throws { try encodeValue(value) }
    mutating func encode(_ value: Int) throws { try encodeValue(value) }
    mutating func encode(_ value: Int8) throws { try encodeValue(value) }
    mutating func encode(_ value: Int16) throws { try encodeValue(value) }
    mutating func encode(_ value: Int32) throws { try encodeValue(value) }
    mutating func encode(_ value: Int64) throws { try encodeValue(value) }
    mutating func encode(_ value: Int128) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt8) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt16) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt32) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt64) throws { try encodeValue(value) }
    mutating func encode(_ value: UInt128) throws { try encodeValue(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeValue(value)
    }

    @inline(__always)
    private func encodeValue<T: Encodable>(_ value: T) throws {
        try activate()
        try core.encodeValue(value)
    }
}
