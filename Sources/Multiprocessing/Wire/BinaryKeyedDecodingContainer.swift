struct BinaryKeyedDecodingContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let core: BinaryDecodingCore
    let region: KeyedRegion

    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { core.allKeys(in: region) }

    func contains(_ key: Key) -> Bool {
        core.find(key, in: region) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        try core.entry(forKey: key, in: region).isNil
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readBool() }
    }

    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readString() }
    }

    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        try core.decodeEntry(key, in: region, exact: true) {
            Double(bitPattern: try $0.readFixed(UInt64.self))
        }
    }

    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        try core.decodeEntry(key, in: region, exact: true) {
            Float(bitPattern: try $0.readFixed(UInt32.self))
        }
    }

    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readSigned(Int.self) }
    }

    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 {
        try core.decodeEntry(key, in: region, exact: true) { Int8(bitPattern: try $0.readByte()) }
    }

    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readSigned(Int16.self) }
    }

    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readSigned(Int32.self) }
    }

    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readSigned(Int64.self) }
    }

    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readInt128() }
    }

    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readUnsigned(UInt.self) }
    }

    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readByte() }
    }

    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readUnsigned(UInt16.self) }
    }

    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readUnsigned(UInt32.self) }
    }

    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readUnsigned(UInt64.self) }
    }

    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 {
        try core.decodeEntry(key, in: region, exact: true) { try $0.readVarint128() }
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        // `decodeEntry` without its closure, which would add a frame to every nesting level.
        let saved = try core.enterEntry(key, in: region, T.self)
        defer { core.leaveEntry(saved) }
        do {
            let value = try core.decodeValue(T.self)
            // Plain values must fill their entry; a custom init(from:) may read only part of it.
            if core.pos != core.limit && WireWriter.isPrimitive(T.self) { throw core.entryNotFilled(T.self) }
            return value
        } catch {
            throw core.prefixed(error, with: key)
        }
    }

    func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type, forKey key: Key
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let entry = try core.entry(forKey: key, in: region)
        guard !entry.isNil else { throw core.foundNil(KeyedDecodingContainer<NestedKey>.self, forKey: key) }
        do {
            let nested = try core.scanKeyed(from: entry.valueStart, limit: entry.valueEnd)
            guard nested.end == entry.valueEnd else {
                throw core.mismatch(KeyedDecodingContainer<NestedKey>.self, "a keyed container")
            }
            return KeyedDecodingContainer(BinaryKeyedDecodingContainer<NestedKey>(core: core, region: nested))
        } catch {
            throw core.prefixed(error, with: key)
        }
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let entry = try core.entry(forKey: key, in: region)
        guard !entry.isNil else { throw core.foundNil((any UnkeyedDecodingContainer).self, forKey: key) }
        do {
            return try core.makeUnkeyed(at: entry.valueStart, limit: entry.valueEnd)
        } catch {
            throw core.prefixed(error, with: key)
        }
    }

    func superDecoder() throws -> any Decoder {
        try superDecoder(entryKey: SuperCodingKey())
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try superDecoder(entryKey: key)
    }

    private func superDecoder<K: CodingKey>(entryKey key: K) throws -> any Decoder {
        let entry = try core.entry(forKey: key, in: region)
        return BinaryRangeDecoder(core: core, start: entry.valueStart, end: entry.valueEnd)
    }
}
