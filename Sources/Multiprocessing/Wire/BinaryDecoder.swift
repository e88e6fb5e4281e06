/// Decodes values written by ``BinaryEncoder``.
///
/// Input is treated as hostile: every length and count is checked against the bytes that
/// remain before anything is allocated, nesting is bounded, and every failure is reported as
/// a ``CodecError``. The type being decoded must match the one that was encoded, since the
/// format carries no type tags.
///
/// ```swift
/// let point = try BinaryDecoder().decode(Point.self, from: bytes)
/// ```
public struct BinaryDecoder: Sendable {
    /// Values made available to `init(from:)` implementations through `Decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// The largest element count accepted for one collection or keyed container.
    public var maximumCollectionCount: Int

    /// How deeply values may nest: deeper input fails with ``CodecError/nestingTooDeep(limit:)``
    /// instead of overflowing the stack. Every value with a container or wire form of its own
    /// is a level (a struct, enum or class, an optional, an array, a dictionary), counted as
    /// ``BinaryEncoder`` counts them, so whatever an encoder with the same limit accepts decodes.
    ///
    /// Measured cost of a level (synthesized `Codable`, keyed, unkeyed, enum, optional and
    /// nested generic shapes): at most about 1.4 KiB of stack optimized and 2 KiB unoptimized.
    /// The default, 32, so fits a 128 KiB thread stack in a debug build with half of it left
    /// for the caller. Raise it (on both sides) only for threads with larger stacks.
    public var maximumDepth: Int = 32

    /// Creates a decoder.
    ///
    /// - Parameter maximumCollectionCount: The largest element count accepted for one
    ///   collection; counts are also bounded by the number of bytes that remain.
    public init(maximumCollectionCount: Int = 1 << 28) {
        self.maximumCollectionCount = max(0, maximumCollectionCount)
    }

    /// Decodes a value of `type` that must span all of `bytes`.
    ///
    /// The bytes are only read during the call; nothing keeps a reference to them.
    ///
    /// - Throws: ``CodecError``; ``CodecError/trailingBytes(_:)`` when bytes remain after a
    ///   complete value, ``CodecError/decodingFailed(_:)`` when an `init(from:)` throws an
    ///   error of its own.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws(CodecError)
        -> T
    {
        // Plain-number arrays at the top level (a pool's inputs and outputs): one copy, no
        // decoder object.
        let id = ObjectIdentifier(T.self)
        if id == PlainArrays.int { return unsafeBitCast(try rawArray(Int.self, bytes), to: T.self) }
        if id == PlainArrays.double { return unsafeBitCast(try rawArray(Double.self, bytes), to: T.self) }
        if id == PlainArrays.uint8 { return unsafeBitCast(try rawArray(UInt8.self, bytes), to: T.self) }
        if id == PlainArrays.int64 { return unsafeBitCast(try rawArray(Int64.self, bytes), to: T.self) }
        if id == PlainArrays.int32 { return unsafeBitCast(try rawArray(Int32.self, bytes), to: T.self) }
        if id == PlainArrays.uint64 { return unsafeBitCast(try rawArray(UInt64.self, bytes), to: T.self) }
        if id == PlainArrays.float { return unsafeBitCast(try rawArray(Float.self, bytes), to: T.self) }
        let core = BinaryDecodingCore(
            bytes: bytes, userInfo: userInfo,
            maximumCollectionCount: maximumCollectionCount, maximumDepth: maximumDepth)
        // Containers that escape `init(from:)` must not read the caller's memory later.
        defer { core.invalidate() }
        let value: T
        do {
            value = try core.decodeValue(T.self)
        } catch {
            throw Self.codecError(from: error)
        }
        if core.pos != bytes.count {
            throw .trailingBytes(bytes.count - core.pos)
        }
        return value
    }

    /// The same bytes `[E]` has through the decoder: a varint count, then the elements' memory.
    private func rawArray<E>(_: E.Type, _ bytes: UnsafeRawBufferPointer) throws(CodecError) -> [E] {
        var position = 0
        let count = try WireReader.varint(in: bytes, at: &position)
        let remaining = bytes.count - position
        let stride = MemoryLayout<E>.stride
        guard count <= UInt64(maximumCollectionCount) else { throw .lengthTooLarge(Int(clamping: count)) }
        guard count <= UInt64(remaining / stride) else {
            let (needed, overflow) = Int(clamping: count).multipliedReportingOverflow(by: stride)
            throw .truncated(needed: overflow ? Int.max : needed, available: remaining)
        }
        let length = Int(count) * stride
        if remaining != length { throw .trailingBytes(remaining - length) }
        return [E](unsafeUninitializedCapacity: Int(count)) { buffer, initialized in
            if length > 0 {
                UnsafeMutableRawBufferPointer(buffer).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: bytes[position..<(position + length)]))
            }
            initialized = Int(count)
        }
    }

    /// Decodes a value of `type` that must span all of `bytes`.
    ///
    /// - Throws: ``CodecError``, as the `UnsafeRawBufferPointer` variant does.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(CodecError) -> T {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(CodecError) -> T in try decode(type, from: buffer) }
        }
        return try result.get()
    }

    /// Maps what escaped the Decodable machinery to a `CodecError`: the decoder's own errors
    /// travel as `DecodingError` (so user code can catch them the usual way) carrying the
    /// `CodecError` as their underlying error.
    private static func codecError(from error: any Error) -> CodecError {
        if let error = error as? CodecError { return error }
        guard let error = error as? DecodingError else {
            return .decodingFailed(String(describing: error))
        }
        let context: DecodingError.Context
        let kind: String
        switch error {
        case .typeMismatch(let type, let found):
            context = found
            kind = "type mismatch for \(type)"
        case .valueNotFound(let type, let found):
            context = found
            kind = "value of type \(type) not found"
        case .keyNotFound(let key, let found):
            context = found
            kind = "key '\(key.stringValue)' not found"
        case .dataCorrupted(let found):
            context = found
            kind = "data corrupted"
        @unknown default:
            return .decodingFailed(String(describing: error))
        }
        let path = renderCodingPath(context.codingPath)
        if let codecError = context.underlyingError as? CodecError {
            return codecError.withCodingPath(path)
        }
        return .decodingFailed(
            "\(kind) at \(path.isEmpty ? "<root>" : path): \(context.debugDescription)")
    }
}

// MARK: - Types with their own wire form

/// Types the decoder reads without calling their `init(from:)` (see `BinaryEncodingSpecial`).
protocol BinaryDecodingSpecial {
    /// `R` is always `Self`; returning it generically avoids boxing the value.
    static func decodeSpecial<R>(from core: BinaryDecodingCore, as: R.Type) throws -> R
}

extension Optional: BinaryDecodingSpecial where Wrapped: Decodable {
    static func decodeSpecial<R>(from core: BinaryDecodingCore, as: R.Type) throws -> R {
        let value: Self
        switch try core.readByte() {
        case 0:
            value = .none
        case 1:
            value = .some(try core.decodeValue(Wrapped.self))
        case let tag:
            throw core.badOptionalTag(tag)
        }
        return unsafeBitCast(value, to: R.self)
    }
}

extension Array: BinaryDecodingSpecial where Element: Decodable {
    static func decodeSpecial<R>(from core: BinaryDecodingCore, as: R.Type) throws -> R {
        unsafeBitCast(try core.decodeElements(Element.self), to: R.self)
    }
}

extension ArraySlice: BinaryDecodingSpecial where Element: Decodable {
    static func decodeSpecial<R>(from core: BinaryDecodingCore, as: R.Type) throws -> R {
        unsafeBitCast(ArraySlice(try core.decodeElements(Element.self)), to: R.self)
    }
}

extension ContiguousArray: BinaryDecodingSpecial where Element: Decodable {
    static func decodeSpecial<R>(from core: BinaryDecodingCore, as: R.Type) throws -> R {
        unsafeBitCast(ContiguousArray(try core.decodeElements(Element.self)), to: R.self)
    }
}

// MARK: - Decoder core

/// The bytes of one keyed container: entries in `start..<stop`, the end byte at `stop`.
struct KeyedRegion {
    var start: Int
    var stop: Int
    var end: Int
    var count: Int

    static let none = KeyedRegion(start: -1, stop: 0, end: 0, count: 0)
}

/// One parsed keyed entry.
struct KeyedEntry {
    var isEnd: Bool
    var keyIsInt: Bool
    /// Zigzag Int for Int keys, UTF-8 count + 1 for String keys.
    var keyPayload: UInt64
    var keyStart: Int
    var valueStart: Int
    var valueEnd: Int
    var isNil: Bool
    var next: Int
}

/// The `Decoder` handed to `init(from:)`: a bounds-checked cursor over the input.
///
/// `pos..<limit` is the region being read. Keyed values are read by pointing the cursor at
/// the entry and restoring it afterwards; unkeyed and single-value containers keep their own
/// position and re-seat the cursor when something else moved it.
final class BinaryDecodingCore: Decoder {
    // A core lives inside one synchronous `decode` call and no access to its state spans a
    // call into user code, so the runtime exclusivity checks would only cost time.
    private let base: UnsafeRawPointer
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
    @exclusivity(unchecked) private var lookupStart = -1
    @exclusivity(unchecked) private var lookupNext = 0
    @exclusivity(unchecked) private var lookupLast = -1

    // For large containers read out of order: key string (UTF-8) -> entry offset.
    @exclusivity(unchecked) private var indexStart = -1
    @exclusivity(unchecked) private var index: [[UInt8]: Int] = [:]

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

    private func truncated(_ needed: UInt64, available: Int) -> DecodingError {
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

    // MARK: Keyed containers

    /// Parses the entry (or end byte) at `offset`; all of it must lie below `limit`.
    func parseEntry(at offset: Int, limit: Int) throws -> KeyedEntry {
        var p = offset
        guard p < limit else { throw fail(.truncated(needed: 1, available: 0)) }
        let first = byte(at: p)
        p += 1
        var payload = UInt64((first >> 1) & 0x3f)
        if first & 0x80 != 0 {
            let rest = try varint(at: &p, limit: limit)
            guard rest >> 58 == 0 else { throw fail(.invalidValue("key header overflows 64 bits")) }
            payload |= rest << 6
        }
        let keyIsInt = first & 1 == 1
        if !keyIsInt && payload == 0 {
            return KeyedEntry(
                isEnd: true, keyIsInt: false, keyPayload: 0, keyStart: p, valueStart: p, valueEnd: p,
                isNil: true, next: p)
        }
        let keyStart = p
        if !keyIsInt {
            let count = payload - 1
            guard count <= UInt64(limit - p) else { throw truncated(count, available: limit - p) }
            p += Int(count)
        }
        let header = try varint(at: &p, limit: limit)
        let valueStart = p
        if header != 0 {
            let count = header - 1
            guard count <= UInt64(limit - p) else { throw truncated(count, available: limit - p) }
            p += Int(count)
        }
        return KeyedEntry(
            isEnd: false, keyIsInt: keyIsInt, keyPayload: payload, keyStart: keyStart, valueStart: valueStart,
            valueEnd: p, isNil: header == 0, next: p)
    }

    /// Validates the keyed container at `start` and finds its end.
    func scanKeyed(from start: Int, limit: Int) throws -> KeyedRegion {
        var p = start
        var count = 0
        while true {
            let entry = try parseEntry(at: p, limit: limit)
            if entry.isEnd {
                return KeyedRegion(start: start, stop: p, end: entry.next, count: count)
            }
            count += 1
            guard count <= maximumCollectionCount else { throw fail(.lengthTooLarge(count)) }
            p = entry.next
        }
    }

    private func keyBytes(_ entry: KeyedEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + entry.keyStart, count: Int(entry.keyPayload - 1))
    }

    private func matches(_ entry: KeyedEntry, _ form: KeyForm) -> Bool {
        if entry.keyIsInt {
            switch form {
            case .int(let zigzagged):
                return entry.keyPayload == zigzagged
            case .string(let string):
                return KeyForm.isDecimal(string.utf8, of: WireWriter.unzigzag(entry.keyPayload))
            }
        }
        let stored = keyBytes(entry)
        switch form {
        case .int(let zigzagged):
            return KeyForm.isDecimal(stored, of: WireWriter.unzigzag(zigzagged))
        case .string(let string):
            let utf8 = string.utf8
            guard utf8.count == stored.count else { return false }
            let equal = utf8.withContiguousStorageIfAvailable { key in
                for offset in 0..<key.count where key[offset] != stored[offset] { return false }
                return true
            }
            return equal ?? utf8.elementsEqual(stored)
        }
    }

    /// Finds the entry for `key`: first where the previous lookup left off, then by scanning.
    func find<K: CodingKey>(_ key: K, in region: KeyedRegion) -> KeyedEntry? {
        guard alive else { return nil }
        let form = KeyForm(key)
        if lookupStart != region.start {
            lookupStart = region.start
            lookupNext = region.start
            lookupLast = -1
        }
        if lookupNext < region.stop, let entry = try? parseEntry(at: lookupNext, limit: region.stop),
            matches(entry, form)
        {
            lookupLast = lookupNext
            lookupNext = entry.next
            return entry
        }
        if lookupLast >= 0, let entry = try? parseEntry(at: lookupLast, limit: region.stop),
            matches(entry, form)
        {
            return entry
        }
        if region.count > 8 { return findIndexed(form, in: region) }
        var p = region.start
        while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
            if matches(entry, form) {
                lookupLast = p
                lookupNext = entry.next
                return entry
            }
            p = entry.next
        }
        return nil
    }

    private func findIndexed(_ form: KeyForm, in region: KeyedRegion) -> KeyedEntry? {
        if indexStart != region.start {
            index.removeAll(keepingCapacity: true)
            var p = region.start
            while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
                let text =
                    entry.keyIsInt
                    ? Array(String(WireWriter.unzigzag(entry.keyPayload)).utf8) : Array(keyBytes(entry))
                // The first entry wins, as in a linear scan.
                if index[text] == nil { index[text] = p }
                p = entry.next
            }
            indexStart = region.start
        }
        let text: [UInt8]
        switch form {
        case .int(let zigzagged): text = Array(String(WireWriter.unzigzag(zigzagged)).utf8)
        case .string(let string): text = Array(string.utf8)
        }
        guard let offset = index[text], let entry = try? parseEntry(at: offset, limit: region.stop) else {
            return nil
        }
        lookupLast = offset
        lookupNext = entry.next
        return entry
    }

    func allKeys<K: CodingKey>(in region: KeyedRegion) -> [K] {
        guard alive else { return [] }
        var keys: [K] = []
        keys.reserveCapacity(region.count)
        var p = region.start
        while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
            if entry.keyIsInt {
                let value = WireWriter.unzigzag(entry.keyPayload)
                if let key = K(intValue: Int(value)) ?? K(stringValue: String(value)) { keys.append(key) }
            } else {
                if let key = K(stringValue: String(decoding: keyBytes(entry), as: UTF8.self)) {
                    keys.append(key)
                }
            }
            p = entry.next
        }
        return keys
    }

    /// Reads the value for `key` with the cursor confined to its entry.
    @inline(__always)
    func decodeEntry<K: CodingKey, T>(
        _ key: K, in region: KeyedRegion, exact: Bool, _ read: (BinaryDecodingCore) throws -> T
    ) throws -> T {
        guard let entry = find(key, in: region) else {
            try checkAlive()
            throw missingKey(key)
        }
        guard !entry.isNil else { throw foundNil(T.self, forKey: key) }
        let savedPos = pos
        let savedLimit = limit
        let savedLookup = (lookupStart, lookupNext, lookupLast)
        pos = entry.valueStart
        limit = entry.valueEnd
        defer {
            pos = savedPos
            limit = savedLimit
            (lookupStart, lookupNext, lookupLast) = savedLookup
        }
        do {
            let value = try read(self)
            if exact && pos != limit {
                throw mismatch(T.self, "\(T.self) (the entry holds \(limit - pos) more byte(s))")
            }
            return value
        } catch {
            throw prefixed(error, with: key)
        }
    }

    /// The cursor state an entry read replaces.
    struct SavedCursor {
        var pos: Int
        var limit: Int
        var lookup: (start: Int, next: Int, last: Int)
    }

    /// Confines the cursor to the value of the entry for `key`, which must hold one.
    func enterEntry<K: CodingKey>(_ key: K, in region: KeyedRegion, _ type: Any.Type) throws
        -> SavedCursor
    {
        guard let entry = find(key, in: region) else { throw missing(key) }
        guard !entry.isNil else { throw foundNil(type, forKey: key) }
        let saved = SavedCursor(pos: pos, limit: limit, lookup: (lookupStart, lookupNext, lookupLast))
        pos = entry.valueStart
        limit = entry.valueEnd
        return saved
    }

    func leaveEntry(_ saved: SavedCursor) {
        pos = saved.pos
        limit = saved.limit
        (lookupStart, lookupNext, lookupLast) = saved.lookup
    }

    @inline(never)
    func entryNotFilled(_ type: Any.Type) -> DecodingError {
        mismatch(type, "\(type) (the entry holds \(limit - pos) more byte(s))")
    }

    @inline(never)
    private func missing<K: CodingKey>(_ key: K) -> any Error {
        do {
            try checkAlive()
        } catch {
            return error
        }
        return missingKey(key)
    }

    /// The entry for `key`, which must exist; nil values are allowed.
    func entry<K: CodingKey>(forKey key: K, in region: KeyedRegion) throws -> KeyedEntry {
        guard let entry = find(key, in: region) else {
            try checkAlive()
            throw missingKey(key)
        }
        return entry
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

// MARK: - Containers

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

struct BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    let core: BinaryDecodingCore
    let start: Int
    let limit: Int

    var codingPath: [any CodingKey] { [] }

    /// Points the cursor at the value unless it already is at or past it in this region.
    @inline(__always)
    private func seat() throws {
        try core.checkAlive()
        if core.limit != limit || core.pos < start {
            core.pos = start
            core.limit = limit
        }
    }

    func decodeNil() -> Bool {
        guard (try? seat()) != nil, core.pos < core.limit, core.byte(at: core.pos) == 0 else { return false }
        core.pos += 1
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        try seat()
        return try core.readBool()
    }

    func decode(_ type: String.Type) throws -> String {
        try seat()
        return try core.readString()
    }

    func decode(_ type: Double.Type) throws -> Double {
        try seat()
        return Double(bitPattern: try core.readFixed(UInt64.self))
    }

    func decode(_ type: Float.Type) throws -> Float {
        try seat()
        return Float(bitPattern: try core.readFixed(UInt32.self))
    }

    func decode(_ type: Int.Type) throws -> Int { try value(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try value(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try value(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try value(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try value(Int64.self) }
    func decode(_ type: Int128.Type) throws -> Int128 { try value(Int128.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try value(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try value(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try value(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try value(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try value(UInt64.self) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try value(UInt128.self) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try value(T.self)
    }

    @inline(__always)
    private func value<T: Decodable>(_: T.Type) throws -> T {
        try seat()
        return try core.decodeValue(T.self)
    }
}

/// The array types with a top-level fast path, looked up once: naming `[Int].self` in a hot
/// generic function costs a runtime metadata lookup on every call.
enum PlainArrays {
    static let int = ObjectIdentifier([Int].self)
    static let double = ObjectIdentifier([Double].self)
    static let uint8 = ObjectIdentifier([UInt8].self)
    static let int64 = ObjectIdentifier([Int64].self)
    static let int32 = ObjectIdentifier([Int32].self)
    static let uint64 = ObjectIdentifier([UInt64].self)
    static let float = ObjectIdentifier([Float].self)
}

/// Reading the wire's LEB128 varints outside a decoder (top-level fast paths, the pool protocol).
enum WireReader {
    /// The varint at `position`, which moves past it.
    static func varint(in bytes: UnsafeRawBufferPointer, at position: inout Int) throws(CodecError) -> UInt64
    {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var p = position
        while true {
            guard p < bytes.count else {
                throw .truncated(needed: p - position + 1, available: bytes.count - position)
            }
            let byte = bytes[p]
            p += 1
            if shift == 63 && byte > 1 { throw .invalidValue("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 {
                position = p
                return result
            }
            shift += 7
        }
    }
}
