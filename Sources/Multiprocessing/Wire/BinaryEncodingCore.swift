/// The `Encoder` handed to `encode(to:)`, owning the output bytes.
///
/// Containers are closed lazily because Codable never says when one is finished: open ones
/// live on a stack, and writing into a container first closes everything opened above it
/// (writing the keyed end byte, or patching a count or a value length). When `encode(to:)`
/// returns, everything it opened is closed.
final class BinaryEncodingCore: Encoder {
    enum Kind {
        /// Ends with a 0 byte.
        case keyed
        /// Its element count is patched into the 1-byte slot reserved at `slot`.
        case unkeyed
        /// A value header (length + 1) is patched into `slot` (super encoders).
        case lengthPrefixed
    }

    struct OpenContainer {
        var kind: Kind
        var slot: Int
        var count: Int
        var id: Int
    }

    // A core lives inside one synchronous `encode` call and no access to its state spans a
    // call into user code, so the runtime exclusivity checks (a third of the time spent on
    // small structs) buy nothing here.
    @exclusivity(unchecked) var bytes: [UInt8] = []
    @exclusivity(unchecked) var open: [OpenContainer] = []
    @exclusivity(unchecked) private var nextID = 1
    @exclusivity(unchecked) private var depth = 0
    private let maximumDepth: Int

    // The current `encode(to:)` call: containers at or above `frameBase` belong to it.
    @exclusivity(unchecked) private var frameBase = 0
    @exclusivity(unchecked) private var frameKeyedDepth = -1
    @exclusivity(unchecked) private var frameKeyedID = 0

    // Types known to have no special wire form, so the protocol cast is skipped.
    @exclusivity(unchecked) private var plainTypes = PlainTypeCache()

    private let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    lazy var userInfo: [CodingUserInfoKey: Any] = sendableUserInfo
    var codingPath: [any CodingKey] { [] }

    init(userInfo: [CodingUserInfoKey: any Sendable], maximumDepth: Int) {
        self.sendableUserInfo = userInfo
        self.maximumDepth = maximumDepth
    }

    // MARK: Values

    func encodeValue<T: Encodable>(_ value: T) throws {
        if WireWriter.appendPrimitive(value, to: &bytes) { return }
        // Every value with a wire form of its own is a level, optionals and arrays too, counted
        // exactly as the decoder counts them: what encodes within the limit decodes.
        guard depth < maximumDepth else { throw CodecError.nestingTooDeep(limit: maximumDepth) }
        let id = ObjectIdentifier(T.self)
        if !plainTypes.contains(id) {
            if let special = T.self as? any BinaryEncodingSpecial.Type {
                depth += 1
                defer { depth -= 1 }
                try special.encodeSpecial(value, into: self)
                return
            }
            plainTypes.insert(id)
        }
        let savedBase = frameBase
        let savedKeyedDepth = frameKeyedDepth
        let savedKeyedID = frameKeyedID
        frameBase = open.count
        frameKeyedDepth = -1
        depth += 1
        defer {
            frameBase = savedBase
            frameKeyedDepth = savedKeyedDepth
            frameKeyedID = savedKeyedID
            depth -= 1
        }
        let start = bytes.count
        try value.encode(to: self)
        close(to: frameBase)
        // No value is empty on the wire: one that wrote nothing becomes an empty keyed
        // container, which the decoder skips when `init(from:)` reads nothing either.
        if bytes.count == start { bytes.append(0) }
    }

    func encodeElements<E: Encodable>(_ elements: UnsafeBufferPointer<E>) throws {
        WireWriter.appendVarint(UInt64(elements.count), to: &bytes)
        let size = WireWriter.rawElementSize(E.self)
        if size != 0 {
            bytes.append(contentsOf: UnsafeRawBufferPointer(elements))
            return
        }
        for element in elements {
            try encodeValue(element)
        }
    }

    // MARK: Container bookkeeping

    /// Pops and finishes every container above `count`.
    func close(to count: Int) {
        while open.count > count {
            let container = open.removeLast()
            switch container.kind {
            case .keyed:
                bytes.append(0)
            case .unkeyed:
                patch(slot: container.slot, with: UInt64(container.count))
            case .lengthPrefixed:
                patch(slot: container.slot, with: UInt64(bytes.count - container.slot))
            }
        }
    }

    /// Writes `value` as a varint into the 1-byte slot, widening it when needed.
    private func patch(slot: Int, with value: UInt64) {
        let size = WireWriter.varintSize(value)
        if size == 1 {
            bytes[slot] = UInt8(truncatingIfNeeded: value)
            return
        }
        bytes.insert(contentsOf: repeatElement(0, count: size - 1), at: slot + 1)
        var value = value
        for index in slot..<(slot + size) {
            bytes[index] = UInt8(truncatingIfNeeded: value & 0x7f) | (index < slot + size - 1 ? 0x80 : 0)
            value >>= 7
        }
    }

    func reserveSlot() -> Int {
        bytes.append(0)
        return bytes.count - 1
    }

    /// Patches the value header of a keyed entry whose slot was reserved at `slot`.
    func finishEntry(slot: Int) {
        patch(slot: slot, with: UInt64(bytes.count - slot))
    }

    func push(_ kind: Kind, slot: Int = -1) -> (depth: Int, id: Int) {
        let id = nextID
        nextID += 1
        open.append(OpenContainer(kind: kind, slot: slot, count: 0, id: id))
        return (open.count - 1, id)
    }

    func isOpen(depth: Int, id: Int) -> Bool {
        depth >= 0 && depth < open.count && open[depth].id == id
    }

    /// Makes the container at `depth` the innermost one again before it writes.
    @inline(__always)
    func activate(depth: Int, id: Int) throws {
        guard isOpen(depth: depth, id: id) else {
            throw CodecError.encodingFailed(
                "an encoding container was used after it was closed; "
                    + "fill nested containers before writing to their parent again")
        }
        if open.count > depth + 1 { close(to: depth + 1) }
    }

    /// Starts an entry of the keyed container at `depth`: activates it and writes the key.
    @inline(__always)
    func beginEntry<K: CodingKey>(_ key: K, depth: Int, id: Int) throws {
        try activate(depth: depth, id: id)
        WireWriter.appendKey(KeyForm(key), to: &bytes)
    }

    /// Starts an element of the unkeyed container at `depth`.
    @inline(__always)
    func beginElement(depth: Int, id: Int) throws {
        try activate(depth: depth, id: id)
        open[depth].count += 1
    }

    func count(depth: Int, id: Int) -> Int {
        isOpen(depth: depth, id: id) ? open[depth].count : 0
    }

    /// Opens a keyed container for an encoder whose own containers start at `base`.
    /// Asking twice in one `encode(to:)` (as `super.encode(to: encoder)` does) continues the
    /// same container.
    func keyedContainer<Key: CodingKey>(
        base: Int, cached: inout (depth: Int, id: Int)
    ) -> KeyedEncodingContainer<Key> {
        if !isOpen(depth: cached.depth, id: cached.id) {
            close(to: base)
            cached = push(.keyed)
        }
        return KeyedEncodingContainer(
            BinaryKeyedEncodingContainer<Key>(core: self, depth: cached.depth, id: cached.id))
    }

    func unkeyedContainer(base: Int) -> BinaryUnkeyedEncodingContainer {
        close(to: base)
        let container = push(.unkeyed, slot: reserveSlot())
        return BinaryUnkeyedEncodingContainer(core: self, depth: container.depth, id: container.id)
    }

    // MARK: Encoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        var cached = (depth: frameKeyedDepth, id: frameKeyedID)
        let container: KeyedEncodingContainer<Key> = keyedContainer(base: frameBase, cached: &cached)
        frameKeyedDepth = cached.depth
        frameKeyedID = cached.id
        return container
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        unkeyedContainer(base: frameBase)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        BinarySingleValueEncodingContainer(core: self, base: frameBase)
    }
}
