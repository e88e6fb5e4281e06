struct BinaryUnkeyedEncodingContainer: UnkeyedEncodingContainer {
    let core: BinaryEncodingCore
    let depth: Int
    let id: Int

    var codingPath: [any CodingKey] { [] }
    var count: Int { core.count(depth: depth, id: id) }

    mutating func encodeNil() throws {
        try core.beginElement(depth: depth, id: id)
        core.bytes.append(0)
    }

    mutating func encode(_ value: Bool) throws { try encodeElement(value) }
    mutating func encode(_ value: String) throws { try encodeElement(value) }
    mutating func encode(_ value: Double) throws { try encodeElement(value) }
    mutating func encode(_ value: Float) throws { try encodeElement(value) }
    mutating func encode(_ value: Int) throws { try encodeElement(value) }
    mutating func encode(_ value: Int8) throws { try encodeElement(value) }
    mutating func encode(_ value: Int16) throws { try encodeElement(value) }
    mutating func encode(_ value: Int32) throws { try encodeElement(value) }
    mutating func encode(_ value: Int64) throws { try encodeElement(value) }
    mutating func encode(_ value: Int128) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt8) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt16) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt32) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt64) throws { try encodeElement(value) }
    mutating func encode(_ value: UInt128) throws { try encodeElement(value) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        try encodeElement(value)
    }

    // For these element types one element's encoding is its little-endian memory, so a
    // contiguous sequence (an ArraySlice<UInt8>, say) is copied in one go.
    mutating func encode<T: Sequence>(contentsOf sequence: T) throws where T.Element == UInt8 {
        try encodeRaw(sequence)
    }

    mutating func encode<T: Sequence>(contentsOf sequence: T) throws where T.Element == Int8 {
        try encodeRaw(sequence)
    }

    mutating func encode<T: Sequence>(contentsOf sequence: T) throws where T.Element == Bool {
        try encodeRaw(sequence)
    }

    mutating func encode<T: Sequence>(contentsOf sequence: T) throws where T.Element == Float {
        try encodeRaw(sequence)
    }

    mutating func encode<T: Sequence>(contentsOf sequence: T) throws where T.Element == Double {
        try encodeRaw(sequence)
    }

    private mutating func encodeRaw<S: Sequence>(_ sequence: S) throws where S.Element: Encodable {
        let copied: Void? = try sequence.withContiguousStorageIfAvailable { elements in
            try core.activate(depth: depth, id: id)
            core.open[depth].count += elements.count
            core.bytes.append(contentsOf: UnsafeRawBufferPointer(elements))
        }
        if copied == nil {
            for element in sequence { try encodeElement(element) }
        }
    }

    @inline(__always)
    private mutating func encodeElement<T: Encodable>(_ value: T) throws {
        try core.beginElement(depth: depth, id: id)
        try core.encodeValue(value)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy keyType: NestedKey.Type
    ) -> KeyedEncodingContainer<NestedKey> {
        guard (try? core.beginElement(depth: depth, id: id)) != nil else {
            return KeyedEncodingContainer(
                BinaryKeyedEncodingContainer<NestedKey>(core: core, depth: -1, id: -1))
        }
        let nested = core.push(.keyed)
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<NestedKey>(core: core, depth: nested.depth, id: nested.id))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        guard (try? core.beginElement(depth: depth, id: id)) != nil else {
            return BinaryUnkeyedEncodingContainer(core: core, depth: -1, id: -1)
        }
        let nested = core.push(.unkeyed, slot: core.reserveSlot())
        return BinaryUnkeyedEncodingContainer(core: core, depth: nested.depth, id: nested.id)
    }

    mutating func superEncoder() -> any Encoder {
        guard (try? core.beginElement(depth: depth, id: id)) != nil else {
            return BinarySuperEncoder(core: core, slotDepth: -1, slotID: -1)
        }
        let slot = core.push(.lengthPrefixed, slot: core.reserveSlot())
        return BinarySuperEncoder(core: core, slotDepth: slot.depth, slotID: slot.id)
    }
}
