/// The decoder `superDecoder()` returns: it reads one length-delimited value.
final class BinaryRangeDecoder: Decoder {
    private let core: BinaryDecodingCore
    private let start: Int
    private let end: Int
    private var keyed = KeyedRegion.none

    init(core: BinaryDecodingCore, start: Int, end: Int) {
        self.core = core
        self.start = start
        self.end = end
    }

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { core.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try core.checkAlive()
        if keyed.start < 0 { keyed = try core.scanKeyed(from: start, limit: end) }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(core: core, region: keyed))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try core.checkAlive()
        return try core.makeUnkeyed(at: start, limit: end)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        try core.checkAlive()
        return BinarySingleValueDecodingContainer(core: core, start: start, limit: end)
    }
}
