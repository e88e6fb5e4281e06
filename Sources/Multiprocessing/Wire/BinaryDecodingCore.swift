/// The `Decoder` handed to `init(from:)`: a bounds-checked cursor over the input.
///
/// `pos..<limit` is the region being read. Keyed values are read by pointing the cursor at
/// the entry and restoring it afterwards; unkeyed and single-value containers keep their own
/// position and re-seat the cursor when something else moved it.
final class BinaryDecodingCore: Decoder {
    // A core lives inside one synchronous `decode` call and no access to its state spans a
    // call into user code, so the runtime exclusivity checks would only cost time.
    let base: UnsafeRawPointer
    @exclusivity(unchecked) var pos = 0
    @exclusivity(unchecked) var limit: Int
    @exclusivity(unchecked) private(set) var alive = true
    let maximumCollectionCount: Int
    private let maximumDepth: Int
    @exclusivity(unchecked) private var depth = 0

    /// The container opened by the current `init(from:)`, if any: the value ends where it does.
    @exclusivity(unchecked) private var frameKeyed = KeyedRegion.none
    @exclusivity(unchecked) private var frameUnkeyed: UnkeyedCursor?
    @exclusivity(unchecked) private var frameOpened = false

    // Keyed lookups usually come in encoding order: remember where the last one matched.
    @exclusivity(unchecked) var lookupStart = -1
    @exclusivity(unchecked) var lookupNext = 0
    @exclusivity(unchecked) var lookupLast = -1

    // For large containers read out of order: key string (UTF-8) -> entry offset.
    @exclusivity(unchecked) var indexStart = -1
    @exclusivity(unchecked) var index: [[UInt8]: Int] = [:]

    // Types known to have no special wire form, so the protocol cast is skipped.
    @exclusivity(unchecked) private var plainTypes = PlainTypeCache()

    private let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    lazy var userInfo: [CodingUserInfoKey: Any] = sendableUserInfo
    var codingPath: [any CodingKey] { [] }

    init(
        bytes: UnsafeRawBufferPointer, userInfo: [CodingUserInfoKey: any Sendable],
        maximumCollectionCount: Int, maximumDepth: Int
    ) {
        // An empty buffer may have no address; with limit 0 nothing is ever read from it.
        self.base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        self.limit = bytes.count
        self.sendableUserInfo = userInfo
        self.maximumCollectionCount = maximumCollectionCount
        self.maximumDepth = maximumDepth
    }

    func invalidate() {
        alive = false
        pos = 0
        limit = 0
    }

    func checkAlive() throws {
        guard alive else {
            throw fail(.decodingFailed("a decoding container was used after decode(_:from:) returned"))
        }
    }

    // MARK: Errors

    func fail(_ error: CodecError) -> DecodingError {
        .dataCorrupted(
            DecodingError.Context(codingPath: [], debugDescription: error.description, underlyingError: error)
        )
    }

    func missingKey<K: CodingKey>(_ key: K) -> DecodingError {
        let error = CodecError.keyNotFound(key.stringValue, codingPath: "")
        return .keyNotFound(
            key,
            DecodingError.Context(codingPath: [], debugDescription: error.description, underlyingError: error)
        )
    }

    func mismatch(_ type: Any.Type, _ expected: String) -> DecodingError {
        let error = CodecError.typeMismatch(expected: expected, codingPath: "")
        return .typeMismatch(
            type,
            DecodingError.Context(codingPath: [], debugDescription: error.description, underlyingError: error)
        )
    }

    func foundNil<K: CodingKey>(_ type: Any.Type, forKey key: K) -> DecodingError {
        let error = CodecError.typeMismatch(expected: "\(type) (found nil)", codingPath: "")
        return .valueNotFound(
            type,
            DecodingError.Context(
                codingPath: [key], debugDescription: error.description, underlyingError: error))
    }

    /// Adds `key` in front of the coding path of a `DecodingError` on its way out.
    func prefixed<K: CodingKey>(_ error: any Error, with key: K) -> any Error {
        guard let error = error as? DecodingError else { return error }
        func prefix(_ context: DecodingError.Context) -> DecodingError.Context {
            DecodingError.Context(
                codingPath: [key] + context.codingPath, debugDescription: context.debugDescription,
                underlyingError: context.underlyingError)
        }
        switch error {
        case .typeMismatch(let type, let context):
            return DecodingError.typeMismatch(type, prefix(context))
        case .valueNotFound(let type, let context):
            return DecodingError.valueNotFound(type, prefix(context))
        case .keyNotFound(let missing, let context):
            return DecodingError.keyNotFound(missing, prefix(context))
        case .dataCorrupted(let context):
            return DecodingError.dataCorrupted(prefix(context))
        @unknown default:
            return error
        }
    }

    func truncated(_ needed: UInt64, available: Int) -> DecodingError {
        fail(
            needed > UInt64(Int.max)
                ? .lengthTooLarge(Int.max) : .truncated(needed: Int(needed), available: available))
    }

    // MARK: Primitive reads

    @inline(__always)
    func byte(at offset: Int) -> UInt8 {
        base.load(fromByteOffset: offset, as: UInt8.self)
    }

    func readByte() throws -> UInt8 {
        guard pos < limit else { throw fail(.truncated(needed: 1, available: 0)) }
        let value = byte(at: pos)
        pos += 1
        return value
    }

    /// Reads a LEB128 varint at `offset`, which must stay below `limit`.
    func varint(at offset: inout Int, limit: Int) throws -> UInt64 {
        var p = offset
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard p < limit else {
                throw fail(.truncated(needed: p - offset + 1, available: limit - offset))
            }
            let byte = byte(at: p)
            p += 1
            if shift == 63 && byte > 1 { throw fail(.invalidValue("varint overflows 64 bits")) }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 {
                offset = p
                return result
            }
            shift += 7
        }
    }

    @inline(__always)
    func readVarint() throws -> UInt64 {
        if pos < limit {
            let first = byte(at: pos)
            if first < 0x80 {
                pos += 1
                return UInt64(first)
            }
        }
        var p = pos
        let value = try varint(at: &p, limit: limit)
        pos = p
        return value
    }

    func readVarint128() throws -> UInt128 {
        var p = pos
        var result: UInt128 = 0
        var shift = 0
        while true {
            guard p < limit else { throw fail(.truncated(needed: p - pos + 1, available: limit - pos)) }
            let byte = byte(at: p)
            p += 1
            if shift == 126 && byte > 3 { throw fail(.invalidValue("varint overflows 128 bits")) }
            result |= UInt128(byte & 0x7f) << shift
            if byte < 0x80 {
                pos = p
                return result
            }
            shift += 7
        }
    }

    @inline(__always)
    func readSigned<I: FixedWidthInteger & SignedInteger>(_: I.Type) throws -> I {
        let value = WireWriter.unzigzag(try readVarint())
        guard let result = I(exactly: value) else {
            throw fail(.invalidValue("integer \(value) is out of range for \(I.self)"))
        }
        return result
    }

    @inline(__always)
    func readUnsigned<I: FixedWidthInteger & UnsignedInteger>(_: I.Type) throws -> I {
        let value = try readVarint()
        guard let result = I(exactly: value) else {
            throw fail(.invalidValue("integer \(value) is out of range for \(I.self)"))
        }
        return result
    }

    func readInt128() throws -> Int128 {
        let raw = try readVarint128()
        return Int128(bitPattern: raw >> 1) ^ -Int128(bitPattern: raw & 1)
    }

    @inline(__always)
    func readFixed<I: FixedWidthInteger>(_: I.Type) throws -> I {
        let size = MemoryLayout<I>.size
        guard limit - pos >= size else { throw fail(.truncated(needed: size, available: limit - pos)) }
        let value = I(littleEndian: base.loadUnaligned(fromByteOffset: pos, as: I.self))
        pos += size
        return value
    }

    func readBool() throws -> Bool {
        switch try readByte() {
        case 0: return false
        case 1: return true
        case let other: throw fail(.invalidValue("Bool byte \(other) (expected 0 or 1)"))
        }
    }

    func readString() throws -> String {
        let count = try readVarint()
        let available = limit - pos
        guard count <= UInt64(available) else { throw truncated(count, available: available) }
        let bytes = UnsafeRawBufferPointer(start: base + pos, count: Int(count))
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw fail(.invalidValue("string is not valid UTF-8"))
        }
        pos += Int(count)
        return string
    }

    /// Reads a collection count, refusing counts the remaining bytes cannot hold.
    func readCount(minimumElementSize: Int) throws -> Int {
        let raw = try readVarint()
        guard raw <= UInt64(maximumCollectionCount) else {
            throw fail(.lengthTooLarge(raw > UInt64(Int.max) ? Int.max : Int(raw)))
        }
        let count = Int(raw)
        let available = limit - pos
        guard count <= available / minimumElementSize else {
            let (needed, overflow) = count.multipliedReportingOverflow(by: minimumElementSize)
            throw fail(.truncated(needed: overflow ? Int.max : needed, available: available))
        }
        return count
    }

    /// Reads `T` if it is a type with a fixed wire form; nil for anything else.
    @inline(__always)
    func decodePrimitive<T>(_: T.Type) throws -> T? {
        if T.self == Int.self { return unsafeBitCast(try readSigned(Int.self), to: T.self) }
        if T.self == String.self { return unsafeBitCast(try readString(), to: T.self) }
        if T.self == Double.self {
            return unsafeBitCast(Double(bitPattern: try readFixed(UInt64.self)), to: T.self)
        }
        if T.self == Bool.self { return unsafeBitCast(try readBool(), to: T.self) }
        if T.self == Float.self {
            return unsafeBitCast(Float(bitPattern: try readFixed(UInt32.self)), to: T.self)
        }
        if T.self == UInt8.self { return unsafeBitCast(try readByte(), to: T.self) }
        if T.self == Int64.self { return unsafeBitCast(try readSigned(Int64.self), to: T.self) }
        if T.self == UInt64.self { return unsafeBitCast(try readUnsigned(UInt64.self), to: T.self) }
        if T.self == UInt.self { return unsafeBitCast(try readUnsigned(UInt.self), to: T.self) }
        if T.self == Int32.self { return unsafeBitCast(try readSigned(Int32.self), to: T.self) }
        if T.self == UInt32.self { return unsafeBitCast(try readUnsigned(UInt32.self), to: T.self) }
        if T.self == Int16.self { return unsafeBitCast(try readSigned(Int16.self), to: T.self) }
        if T.self == UInt16.self { return unsafeBitCast(try readUnsigned(UInt16.self), to: T.self) }
        if T.self == Int8.self { return unsafeBitCast(Int8(bitPattern: try readByte()), to: T.self) }
        if T.self == Int128.self { return unsafeBitCast(try readInt128(), to: T.self) }
        if T.self == UInt128.self { return unsafeBitCast(try readVarint128(), to: T.self) }
        return nil
    }

    // MARK: Values

    // The functions from here to the containers' `decode` are the decoder's recursion: each
    // nesting level costs their frames. They keep rare work (error messages, skipping) in
    // separate functions, because unoptimized builds give every temporary its own stack slot.

    func decodeValue<T: Decodable>(_: T.Type) throws -> T {
        if let value = try decodePrimitive(T.self) { return value }
        if let special = specialType(T.self) { return try decodeSpecialValue(special, as: T.self) }
        let saved = try enterValue()
        defer { leaveValue(saved) }
        let value = try T(from: self)
        finishValue()
        return value
    }

    /// `T` as a type with a wire form of its own (see `BinaryDecodingSpecial`), or nil.
    private func specialType<T>(_: T.Type) -> (any BinaryDecodingSpecial.Type)? {
        let id = ObjectIdentifier(T.self)
        if plainTypes.contains(id) { return nil }
        if let special = T.self as? any BinaryDecodingSpecial.Type { return special }
        plainTypes.insert(id)
        return nil
    }

    private func decodeSpecialValue<T>(_ special: any BinaryDecodingSpecial.Type, as: T.Type) throws -> T {
        guard depth < maximumDepth else { throw tooDeep() }
        depth += 1
        defer { depth -= 1 }
        return try special.decodeSpecial(from: self, as: T.self)
    }

    /// One level deeper, with the current value's container state saved.
    private func enterValue() throws -> SavedState {
        guard depth < maximumDepth else { throw tooDeep() }
        depth += 1
        let saved = SavedState(limit: limit, keyed: frameKeyed, unkeyed: frameUnkeyed, opened: frameOpened)
        frameKeyed = .none
        frameUnkeyed = nil
        frameOpened = false
        return saved
    }

    private func leaveValue(_ saved: SavedState) {
        depth -= 1
        limit = saved.limit
        frameKeyed = saved.keyed
        frameUnkeyed = saved.unkeyed
        frameOpened = saved.opened
    }

    /// What `decodeValue` saves of the enclosing value's state.
    struct SavedState {
        var limit: Int
        var keyed: KeyedRegion
        var unkeyed: UnkeyedCursor?
        var opened: Bool
    }

    /// Continues after the container the value just decoded used, whatever else moved the
    /// position.
    private func finishValue() {
        if frameKeyed.start >= 0 {
            pos = frameKeyed.end
        } else if let frameUnkeyed {
            pos = frameUnkeyed.pos
        } else if !frameOpened, let skipped = try? scanKeyed(from: pos, limit: limit) {
            // Synthesized Codable of a struct without properties writes an empty keyed
            // container but never opens one to read; values that wrote nothing look the same.
            pos = skipped.end
        }
    }

    @inline(never)
    func tooDeep() -> DecodingError {
        fail(.nestingTooDeep(limit: maximumDepth))
    }

    @inline(never)
    func badOptionalTag(_ tag: UInt8) -> DecodingError {
        fail(.invalidValue("optional tag \(tag) (expected 0 or 1)"))
    }

    func decodeElements<E: Decodable>(_: E.Type) throws -> [E] {
        let size = WireWriter.rawElementSize(E.self)
        if size != 0 { return try rawElements(E.self, size: size) }
        let count = try readCount(minimumElementSize: 1)
        var elements: [E] = []
        // Every element takes at least a byte (the count was checked against that), but may be
        // far larger in memory: grow instead of trusting the count for big reservations.
        elements.reserveCapacity(min(count, 1024))
        var offset = 0
        do {
            while offset < count {
                elements.append(try decodeValue(E.self))
                offset += 1
            }
        } catch {
            throw prefixed(error, with: IndexCodingKey(offset))
        }
        return elements
    }

    /// Elements whose wire form is their memory: one copy.
    private func rawElements<E>(_: E.Type, size: Int) throws -> [E] {
        let count = try readCount(minimumElementSize: size)
        let byteCount = count * size
        let source = UnsafeRawBufferPointer(start: base + pos, count: byteCount)
        if E.self == Bool.self {
            // Any other byte would be an invalid Bool in memory.
            for (offset, byte) in source.enumerated() where byte > 1 {
                throw prefixed(
                    fail(.invalidValue("Bool byte \(byte) (expected 0 or 1)")),
                    with: IndexCodingKey(offset))
            }
        }
        let elements = [E](unsafeUninitializedCapacity: count) { buffer, initialized in
            if byteCount > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source) }
            initialized = count
        }
        pos += byteCount
        return elements
    }

    /// An unkeyed container whose count is at `offset`; the decoder's position is unchanged.
    func makeUnkeyed(
        at offset: Int, limit regionLimit: Int, parent: UnkeyedCursor? = nil
    ) throws -> BinaryUnkeyedDecodingContainer {
        let savedPos = pos
        let savedLimit = limit
        pos = offset
        limit = regionLimit
        defer {
            pos = savedPos
            limit = savedLimit
        }
        let count = try readCount(minimumElementSize: 1)
        let cursor = UnkeyedCursor(pos: pos, limit: regionLimit, total: count, parent: parent)
        return BinaryUnkeyedDecodingContainer(core: self, cursor: cursor)
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        try checkAlive()
        frameOpened = true
        if frameKeyed.start < 0 {
            frameKeyed = try scanKeyed(from: pos, limit: limit)
            pos = frameKeyed.end
        }
        return KeyedDecodingContainer(BinaryKeyedDecodingContainer<Key>(core: self, region: frameKeyed))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try checkAlive()
        frameOpened = true
        let container = try makeUnkeyed(at: pos, limit: limit)
        pos = container.cursor.pos
        frameUnkeyed = container.cursor
        return container
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        try checkAlive()
        frameOpened = true
        return BinarySingleValueDecodingContainer(core: self, start: pos, limit: limit)
    }
}
