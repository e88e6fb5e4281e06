/// The encoder `superEncoder()` returns: it writes into a length-prefixed slot of its parent.
final class BinarySuperEncoder: Encoder {
    private let core: BinaryEncodingCore
    /// Depth and id of the length-prefixed slot this encoder fills (-1: dead).
    private let slotDepth: Int
    private let slotID: Int
    private var cached = (depth: -1, id: 0)

    init(core: BinaryEncodingCore, slotDepth: Int, slotID: Int) {
        self.core = core
        self.slotDepth = slotDepth
        self.slotID = slotID
    }

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { core.userInfo }

    private var isLive: Bool { core.isOpen(depth: slotDepth, id: slotID) }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        guard isLive else {
            return KeyedEncodingContainer(BinaryKeyedEncodingContainer<Key>(core: core, depth: -1, id: -1))
        }
        return core.keyedContainer(base: slotDepth + 1, cached: &cached)
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        guard isLive else { return BinaryUnkeyedEncodingContainer(core: core, depth: -1, id: -1) }
        return core.unkeyedContainer(base: slotDepth + 1)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncodingContainer(core: core, base: isLive ? slotDepth + 1 : -1)
    }
}
