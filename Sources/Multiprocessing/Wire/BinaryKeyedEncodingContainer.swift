struct BinaryKeyedEncodingContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let core: BinaryEncodingCore
    let depth: Int
    let id: Int

    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(0)
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(2)
        core.bytes.append(value ? 1 : 0)
    }

    mutating func encode(_ value: String, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        let count = value.utf8.count
        WireWriter.appendVarint(UInt64(WireWriter.varintSize(UInt64(count)) + count + 1), to: &core.bytes)
        WireWriter.appendString(value, to: &core.bytes)
    }

    mutating func encode(_ value: Double, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(9)
        WireWriter.appendFixed(value.bitPattern, to: &core.bytes)
    }

    mutating func encode(_ value: Float, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(5)
        WireWriter.appendFixed(value.bitPattern, to: &core.bytes)
    }

    @inline(__always)
    private mutating func encodeVarint(_ value: UInt64, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(UInt8(truncatingIfNeeded: WireWriter.varintSize(value) + 1))
        WireWriter.appendVarint(value, to: &core.bytes)
    }

    mutating func encode(_ value: Int, forKey key: Key) throws {
        try encodeVarint(WireWriter.zigzag(Int64(value)), forKey: key)
    }

    mutating func encode(_ value: Int8, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(2)
        core.bytes.append(UInt8(bitPattern: value))
    }

    mutating func encode(_ value: Int16, forKey key: Key) throws {
        try encodeVarint(WireWriter.zigzag(Int64(value)), forKey: key)
    }

    mutating func encode(_ value: Int32, forKey key: Key) throws {
        try encodeVarint(WireWriter.zigzag(Int64(value)), forKey: key)
    }

    mutating func encode(_ value: Int64, forKey key: Key) throws {
        try encodeVarint(WireWriter.zigzag(value), forKey: key)
    }

    mutating func encode(_ value: Int128, forKey key: Key) throws {
        try encodeGeneric(value, forKey: key)
    }

    mutating func encode(_ value: UInt, forKey key: Key) throws {
        try encodeVarint(UInt64(value), forKey: key)
    }

    mutating func encode(_ value: UInt8, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        core.bytes.append(2)
        core.bytes.append(value)
    }

    mutating func encode(_ value: UInt16, forKey key: Key) throws {
        try encodeVarint(UInt64(value), forKey: key)
    }

    mutating func encode(_ value: UInt32, forKey key: Key) throws {
        try encodeVarint(UInt64(value), forKey: key)
    }

    mutating func encode(_ value: UInt64, forKey key: Key) throws {
        try encodeVarint(value, forKey: key)
    }

    mutating func encode(_ value: UInt128, forKey key: Key) throws {
        try encodeGeneric(value, forKey: key)
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try encodeGeneric(value, forKey: key)
    }

    /// Writes the value after a 1-byte length slot and patches the slot afterwards.
    private mutating func encodeGeneric<T: Encodable>(_ value: T, forKey key: Key) throws {
        try core.beginEntry(key, depth: depth, id: id)
        let slot = core.reserveSlot()
        try core.encodeValue(value)
        core.finishEntry(slot: slot)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type, forKey key: Key
    ) -> KeyedEncodingContainer<NestedKey> {
        guard (try? core.beginEntry(key, depth: depth, id: id)) != nil else {
            return KeyedEncodingContainer(
                BinaryKeyedEncodingContainer<NestedKey>(core: core, depth: -1, id: -1))
        }
        _ = core.push(.lengthPrefixed, slot: core.reserveSlot())
        let nested = core.push(.keyed)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(core: core, depth: nested.depth, id: nested.id))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        guard (try? core.beginEntry(key, depth: depth, id: id)) != nil else {
            return BinaryUnkeyedEncodingContainer(core: core, depth: -1, id: -1)
        }
        _ = core.push(.lengthPrefixed, slot: core.reserveSlot())
        let nested = core.push(.unkeyed, slot: core.reserveSlot())
        return BinaryUnkeyedEncodingContainer(core: core, depth: nested.depth, id: nested.id)
    }

    mutating func superEncoder() -> any Encoder {
        superEncoder(entryKey: SuperCodingKey())
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        superEncoder(entryKey: key)
    }

    private mutating func superEncoder<K: CodingKey>(entryKey key: K) -> any Encoder {
        guard (try? core.beginEntry(key, depth: depth, id: id)) != nil else {
            return BinarySuperEncoder(core: core, slotDepth: -1, slotID: -1)
        }
        let slot = core.push(.lengthPrefixed, slot: core.reserveSlot())
        return BinarySuperEncoder(core: core, slotDepth: slot.depth, slotID: slot.id)
    }
}
