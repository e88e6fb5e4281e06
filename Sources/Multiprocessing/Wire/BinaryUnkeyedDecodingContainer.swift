/// The position of an unkeyed container, shared with the containers nested in it.
final class UnkeyedCursor {
    /// Where the next element starts.
    @exclusivity(unchecked) var pos: Int
    let limit: Int
    let total: Int
    @exclusivity(unchecked) var index = 0
    /// The unkeyed container this one is an element of; its position moves along with ours.
    let parent: UnkeyedCursor?

    init(pos: Int, limit: Int, total: Int, parent: UnkeyedCursor?) {
        self.pos = pos
        self.limit = limit
        self.total = total
        self.parent = parent
    }

    func advance(to position: Int) {
        var cursor: UnkeyedCursor? = self
        while let current = cursor {
            current.pos = position
            cursor = current.parent
        }
    }
}

struct BinaryUnkeyedDecodingContainer: UnkeyedDecodingContainer {
    let core: BinaryDecodingCore
    let cursor: UnkeyedCursor

    var codingPath: [any CodingKey] { [] }
    var count: Int? { cursor.total }
    var isAtEnd: Bool { cursor.index >= cursor.total }
    var currentIndex: Int { cursor.index }

    /// Points the decoder at the next element (siblings may have moved it elsewhere).
    @inline(__always)
    private func seat() throws {
        guard cursor.index < cursor.total else {
            throw core.prefixed(
                core.fail(
                    .invalidValue("read past the end of an unkeyed container of \(cursor.total) element(s)")),
                with: IndexCodingKey(cursor.index))
        }
        try core.checkAlive()
        core.pos = cursor.pos
        core.limit = cursor.limit
    }

    @inline(__always)
    private func element<T>(_ read: (BinaryDecodingCore) throws -> T) throws -> T {
        try seat()
        do {
            let value = try read(core)
            cursor.advance(to: core.pos)
            cursor.index += 1
            return value
        } catch {
            throw core.prefixed(error, with: IndexCodingKey(cursor.index))
        }
    }

    /// Optionals written through the encoder carry a presence tag, unlike `decodeNil()`.
    private func optionalElement<T>(_ read: (BinaryDecodingCore) throws -> T) throws -> T? {
        if isAtEnd { return nil }
        return try element { core in
            switch try core.readByte() {
            case 0: return nil
            case 1: return try read(core)
            case let tag: throw core.fail(.invalidValue("optional tag \(tag) (expected 0 or 1)"))
            }
        }
    }

    mutating func decodeNil() throws -> Bool {
        try seat()
        guard core.pos < core.limit, core.byte(at: core.pos) == 0 else { return false }
        cursor.advance(to: core.pos + 1)
        cursor.index += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try element { try $0.readBool() } }
    mutating func decode(_ type: String.Type) throws -> String { try element { try $0.readString() } }
    mutating func decode(_ type: Double.Type) throws -> Double {
        try element { Double(bitPattern: try $0.readFixed(UInt64.self)) }
    }
    mutating func decode(_ type: Float.Type) throws -> Float {
        try element { Float(bitPattern: try $0.readFixed(UInt32.self)) }
    }
    mutating func decode(_ type: Int.Type) throws -> Int { try element { try $0.readSigned(Int.self) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 {
        try element { Int8(bitPattern: try $0.readByte()) }
    }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try element { try $0.readSigned(Int16.self) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try element { try $0.readSigned(Int32.self) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try element { try $0.readSigned(Int64.self) } }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try element { try $0.readInt128() } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try element { try $0.readUnsigned(UInt.self) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try element { try $0.readByte() } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 {
        try element { try $0.readUnsigned(UInt16.self) }
    }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 {
        try element { try $0.readUnsigned(UInt32.self) }
    }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 {
        try element { try $0.readUnsigned(UInt64.self) }
    }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try element { try $0.readVarint128() } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        // `element` without its closure, which would add a frame to every nesting level.
        try seat()
        do {
            let value = try core.decodeValue(T.self)
            cursor.advance(to: core.pos)
            cursor.index += 1
            return value
        } catch {
            throw core.prefixed(error, with: IndexCodingKey(cursor.index))
        }
    }

    mutating func decodeIfPresent(_ type: Bool.Type) throws -> Bool? {
        try optionalElement { try $0.readBool() }
    }
    mutating func decodeIfPresent(_ type: String.Type) throws -> String? {
        try optionalElement { try $0.readString() }
    }
    mutating func decodeIfPresent(_ type: Double.Type) throws -> Double? {
        try optionalElement { Double(bitPattern: try $0.readFixed(UInt64.self)) }
    }
    mutating func decodeIfPresent(_ type: Float.Type) throws -> Float? {
        try optionalElement { Float(bitPattern: try $0.readFixed(UInt32.self)) }
    }
    mutating func decodeIfPresent(_ type: Int.Type) throws -> Int? {
        try optionalElement { try $0.readSigned(Int.self) }
    }
    mutating func decodeIfPresent(_ type: Int8.Type) throws -> Int8? {
        try optionalElement { Int8(bitPattern: try $0.readByte()) }
    }
    mutating func decodeIfPresent(_ type: Int16.Type) throws -> Int16? {
        try optionalElement { try $0.readSigned(Int16.self) }
    }
    mutating func decodeIfPresent(_ type: Int32.Type) throws -> Int32? {
        try optionalElement { try $0.readSigned(Int32.self) }
    }
    mutating func decodeIfPresent(_ type: Int64.Type) throws -> Int64? {
        try optionalElement { try $0.readSigned(Int64.self) }
    }
    mutating func decodeIfPresent(_ type: Int128.Type) throws -> Int128? {
        try optionalElement { try $0.readInt128() }
    }
    mutating func decodeIfPresent(_ type: UInt.Type) throws -> UInt? {
        try optionalElement { try $0.readUnsigned(UInt.self) }
    }
    mutating func decodeIfPresent(_ type: UInt8.Type) throws -> UInt8? {
        try optionalElement { try $0.readByte() }
    }
    mutating func decodeIfPresent(_ type: UInt16.Type) throws -> UInt16? {
        try optionalElement { try $0.readUnsigned(UInt16.self) }
    }
    mutating func decodeIfPresent(_ type: UInt32.Type) throws -> UInt32? {
        try optionalElement { try $0.readUnsigned(UInt32.self) }
    }
    mutating func decodeIfPresent(_ type: UInt64.Type) throws -> UInt64? {
        try optionalElement { try $0.readUnsigned(UInt64.self) }
    }
    mutating func decodeIfPresent(_ type: UInt128.Type) throws -> UInt128? {
        try optionalElement { try $0.readVarint128() }
    }
    mutating func decodeIfPresent<T: Decodable>(_ type: T.Type) throws -> T? {
        try optionalElement { try $0.decodeValue(T.self) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(
        keyedBy type: NestedKey.Type
    ) throws -> KeyedDecodingContainer<NestedKey> {
        let region = try element { core in
            let region = try core.scanKeyed(from: core.pos, limit: core.limit)
            core.pos = region.end
            return region
        }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<NestedKey>(core: core, region: region))
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try element { core in
            let nested = try core.makeUnkeyed(at: core.pos, limit: core.limit, parent: cursor)
            core.pos = nested.cursor.pos
            return nested
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        let range = try element { core in
            let header = try core.readVarint()
            let start = core.pos
            if header != 0 {
                guard header - 1 <= UInt64(core.limit - start) else {
                    throw core.fail(
                        .truncated(needed: Int(clamping: header - 1), available: core.limit - start))
                }
                core.pos += Int(header - 1)
            }
            return (start, core.pos)
        }
        return BinaryRangeDecoder(core: core, start: range.0, end: range.1)
    }
}
