// Wire format (little-endian, no type tags: the reader must know the type, as with Codable):
//
// - Bool: one byte, 0 or 1. UInt8 / Int8: one raw byte.
// - Other integers: LEB128 varint; signed ones zigzag-encoded first (Int128: up to 19 bytes).
// - Float / Double: 4 / 8 bytes, the IEEE bit pattern (NaN payloads and -0 survive).
// - String: varint byte count, then UTF-8.
// - Optional (whenever it passes through the codec generically): 0 = nil, 1 then the value.
// - nil written with `encodeNil()` in a positional container: one 0 byte.
// - Unkeyed container: varint count, then the elements.
// - Arrays (also ArraySlice, ContiguousArray) of Bool, Float, Double and fixed-width integers:
//   varint count, then the elements' raw little-endian memory (Int/UInt as 8 bytes).
// - Keyed container: entries, then a 0 byte. Entry = key header, value header, value.
//   Key header: first byte = bit 0 (1: Int key, 0: String key) | 6 payload bits << 1 |
//   0x80 if a varint with the payload's remaining bits follows. Int key payload: zigzag of the
//   Int. String key payload: UTF-8 count + 1, then the UTF-8 (so a 0 byte ends the container).
//   Value header: varint, 0 = nil, otherwise the value's byte length + 1, which lets a decoder
//   skip entries and read keys in any order.
// - superEncoder of an unkeyed container: a value header, then the value.
// - An `encode(to:)` that writes nothing writes an empty keyed container (one 0 byte), so
//   every value takes at least one byte and counts can be checked against remaining bytes.

/// Encodes `Encodable` values into a compact binary form that ``BinaryDecoder`` reads back.
///
/// The format is positional, like the Codable calls that produce it: integers are varints,
/// floating-point values are their exact bit patterns, keyed containers carry their keys so
/// that `init(from:)` may read them in any order, and arrays of plain numbers are copied in
/// bulk. Decoding must use the same types that encoding used.
///
/// ```swift
/// let bytes = try BinaryEncoder().encode(["a": [1.0, 2.5]])
/// let back = try BinaryDecoder().decode([String: [Double]].self, from: bytes)
/// ```
public struct BinaryEncoder: Sendable {
    /// Values made available to `encode(to:)` implementations through `Encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// How deeply values may nest before encoding fails with
    /// ``CodecError/nestingTooDeep(limit:)`` instead of overflowing the stack (for instance on a
    /// reference cycle between classes). Levels are counted as the decoder counts them (see
    /// ``BinaryDecoder/maximumDepth``) and the defaults match, so whatever encodes decodes.
    public var maximumDepth: Int = 32

    /// Creates an encoder with no user info.
    public init() {}

    /// Encodes `value` into a new byte array.
    ///
    /// - Throws: ``CodecError/encodingFailed(_:)`` when an `encode(to:)` implementation throws.
    public func encode<T: Encodable>(_ value: T) throws(CodecError) -> [UInt8] {
        var bytes: [UInt8] = []
        if T.self == String.self {
            // One exact allocation instead of growing past the varint.
            bytes.reserveCapacity(unsafeBitCast(value, to: String.self).utf8.count + 10)
        }
        try encode(value, appendingTo: &bytes)
        return bytes
    }

    /// Encodes `value` at the end of `buffer`, reusing its capacity.
    ///
    /// On failure `buffer` is left as it was.
    ///
    /// - Throws: ``CodecError/encodingFailed(_:)`` when an `encode(to:)` implementation throws.
    public func encode<T: Encodable>(_ value: T, appendingTo buffer: inout [UInt8]) throws(CodecError) {
        // Plain values need no encoder object at all.
        if WireWriter.appendPrimitive(value, to: &buffer) { return }
        // Plain-number arrays: a varint count and the memory, exactly as the encoder writes them.
        let id = ObjectIdentifier(T.self)
        if id == PlainArrays.int { return Self.appendRaw(unsafeBitCast(value, to: [Int].self), to: &buffer) }
        if id == PlainArrays.double {
            return Self.appendRaw(unsafeBitCast(value, to: [Double].self), to: &buffer)
        }
        if id == PlainArrays.int64 {
            return Self.appendRaw(unsafeBitCast(value, to: [Int64].self), to: &buffer)
        }
        if id == PlainArrays.int32 {
            return Self.appendRaw(unsafeBitCast(value, to: [Int32].self), to: &buffer)
        }
        let start = buffer.count
        let core = BinaryEncodingCore(userInfo: userInfo, maximumDepth: maximumDepth)
        swap(&core.bytes, &buffer)
        do {
            try core.encodeValue(value)
            core.close(to: 0)
        } catch {
            swap(&core.bytes, &buffer)
            buffer.removeLast(buffer.count - start)
            throw Self.codecError(from: error)
        }
        swap(&core.bytes, &buffer)
    }

    private static func appendRaw<E>(_ values: [E], to buffer: inout [UInt8]) {
        WireWriter.appendVarint(UInt64(values.count), to: &buffer)
        values.withUnsafeBytes { buffer.append(contentsOf: $0) }
    }

    private static func codecError(from error: any Error) -> CodecError {
        if let error = error as? CodecError { return error }
        if let error = error as? EncodingError {
            switch error {
            case .invalidValue(let value, let context):
                let path = renderCodingPath(context.codingPath)
                return .encodingFailed(
                    "invalid value \(value) at \(path.isEmpty ? "<root>" : path): \(context.debugDescription)"
                )
            @unknown default:
                return .encodingFailed(String(describing: error))
            }
        }
        return .encodingFailed(String(describing: error))
    }
}

// MARK: - Shared wire helpers

/// Byte-level writers shared by the top-level fast path and the encoder core.
enum WireWriter {
    @inline(__always)
    static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value &<< 1) ^ (value >> 63))
    }

    @inline(__always)
    static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    @inline(__always)
    static func varintSize(_ value: UInt64) -> Int {
        let bits = 64 - value.leadingZeroBitCount
        return bits <= 7 ? 1 : (bits + 6) / 7
    }

    @inline(__always)
    static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        if value < 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value))
            return
        }
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    static func varintSize(_ value: UInt128) -> Int {
        let bits = 128 - value.leadingZeroBitCount
        return bits <= 7 ? 1 : (bits + 6) / 7
    }

    static func appendVarint(_ value: UInt128, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    @inline(__always)
    static func zigzag(_ value: Int128) -> UInt128 {
        UInt128(bitPattern: (value &<< 1) ^ (value >> 127))
    }

    @inline(__always)
    static func appendFixed<I: FixedWidthInteger>(_ value: I, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendString(_ string: String, to bytes: inout [UInt8]) {
        let utf8 = string.utf8
        appendVarint(UInt64(utf8.count), to: &bytes)
        bytes.append(contentsOf: utf8)
    }

    /// Writes a key header (see the format notes at the top of this file).
    @inline(__always)
    static func appendTagged(_ tag: UInt8, _ payload: UInt64, to bytes: inout [UInt8]) {
        let low = UInt8(truncatingIfNeeded: payload & 0x3f) << 1 | tag
        let rest = payload >> 6
        if rest == 0 {
            bytes.append(low)
        } else {
            bytes.append(low | 0x80)
            appendVarint(rest, to: &bytes)
        }
    }

    static func appendKey(_ form: KeyForm, to bytes: inout [UInt8]) {
        switch form {
        case .int(let zigzagged):
            appendTagged(1, zigzagged, to: &bytes)
        case .string(let string):
            let utf8 = string.utf8
            appendTagged(0, UInt64(utf8.count) + 1, to: &bytes)
            bytes.append(contentsOf: utf8)
        }
    }

    /// Appends `value` if it is one of the types with a fixed wire form; returns false for
    /// anything else. Metatype comparisons are cheap even in unspecialized generic code.
    @inline(__always)
    static func appendPrimitive<T>(_ value: T, to bytes: inout [UInt8]) -> Bool {
        if T.self == Int.self {
            appendVarint(zigzag(Int64(unsafeBitCast(value, to: Int.self))), to: &bytes)
        } else if T.self == String.self {
            appendString(unsafeBitCast(value, to: String.self), to: &bytes)
        } else if T.self == Double.self {
            appendFixed(unsafeBitCast(value, to: Double.self).bitPattern, to: &bytes)
        } else if T.self == Bool.self {
            bytes.append(unsafeBitCast(value, to: Bool.self) ? 1 : 0)
        } else if T.self == Float.self {
            appendFixed(unsafeBitCast(value, to: Float.self).bitPattern, to: &bytes)
        } else if T.self == UInt8.self {
            bytes.append(unsafeBitCast(value, to: UInt8.self))
        } else if T.self == Int64.self {
            appendVarint(zigzag(unsafeBitCast(value, to: Int64.self)), to: &bytes)
        } else if T.self == UInt64.self {
            appendVarint(unsafeBitCast(value, to: UInt64.self), to: &bytes)
        } else if T.self == UInt.self {
            appendVarint(UInt64(unsafeBitCast(value, to: UInt.self)), to: &bytes)
        } else if T.self == Int32.self {
            appendVarint(zigzag(Int64(unsafeBitCast(value, to: Int32.self))), to: &bytes)
        } else if T.self == UInt32.self {
            appendVarint(UInt64(unsafeBitCast(value, to: UInt32.self)), to: &bytes)
        } else if T.self == Int16.self {
            appendVarint(zigzag(Int64(unsafeBitCast(value, to: Int16.self))), to: &bytes)
        } else if T.self == UInt16.self {
            appendVarint(UInt64(unsafeBitCast(value, to: UInt16.self)), to: &bytes)
        } else if T.self == Int8.self {
            bytes.append(UInt8(bitPattern: unsafeBitCast(value, to: Int8.self)))
        } else if T.self == Int128.self {
            appendVarint(zigzag(unsafeBitCast(value, to: Int128.self)), to: &bytes)
        } else if T.self == UInt128.self {
            appendVarint(unsafeBitCast(value, to: UInt128.self), to: &bytes)
        } else {
            return false
        }
        return true
    }

    /// Whether `T` is written by `appendPrimitive` (so its encoding has a known extent).
    @inline(__always)
    static func isPrimitive<T>(_: T.Type) -> Bool {
        rawElementSize(T.self) != 0 || T.self == String.self || T.self == Int128.self
            || T.self == UInt128.self
    }

    /// The byte size of one element of an array sent as raw memory, or 0 when `E` is not
    /// such a type. The wire form is little-endian with 8-byte Int/UInt.
    @inline(__always)
    static func rawElementSize<E>(_: E.Type) -> Int {
        if E.self == UInt8.self || E.self == Int8.self || E.self == Bool.self { return 1 }
        if E.self == Double.self || E.self == Int64.self || E.self == UInt64.self { return 8 }
        if Int.bitWidth == 64 && (E.self == Int.self || E.self == UInt.self) { return 8 }
        if E.self == Float.self || E.self == Int32.self || E.self == UInt32.self { return 4 }
        if E.self == Int16.self || E.self == UInt16.self { return 2 }
        return 0
    }
}

#if _endian(big)
    #error("BinaryEncoder/BinaryDecoder copy numeric arrays as raw memory and need a little-endian host")
#endif

/// How a coding key is written: as an Int only when its string form is exactly the Int's
/// decimal text, so both forms can be rebuilt from the wire (and "042" stays a string).
/// Keys match by that string either way; the Int form only saves bytes.
enum KeyForm {
    case int(UInt64)
    case string(String)

    @inline(__always)
    init<K: CodingKey>(_ key: K) {
        let string = key.stringValue
        if let int = key.intValue, Self.isDecimal(string.utf8, of: Int64(int)) {
            self = .int(WireWriter.zigzag(Int64(int)))
        } else {
            self = .string(string)
        }
    }

    /// Whether `text` is exactly the decimal form of `value`.
    static func isDecimal<C: BidirectionalCollection>(_ text: C, of value: Int64) -> Bool
    where C.Element == UInt8 {
        var index = text.endIndex
        var magnitude = value.magnitude
        repeat {
            guard index > text.startIndex else { return false }
            index = text.index(before: index)
            guard text[index] == UInt8(truncatingIfNeeded: 0x30 + magnitude % 10) else { return false }
            magnitude /= 10
        } while magnitude != 0
        if value < 0 {
            guard index > text.startIndex else { return false }
            index = text.index(before: index)
            guard text[index] == UInt8(ascii: "-") else { return false }
        }
        return index == text.startIndex
    }
}

/// The key `superEncoder()` / `superDecoder()` use, as JSONEncoder does.
struct SuperCodingKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { if stringValue != "super" { return nil } }
    init?(intValue: Int) { nil }
}

/// An element position in an unkeyed container, for error paths.
struct IndexCodingKey: CodingKey {
    let index: Int
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

/// Renders a coding path as `a.b[2].c`.
func renderCodingPath(_ path: [any CodingKey]) -> String {
    var result = ""
    for key in path {
        if let index = key as? IndexCodingKey {
            result += "[\(index.index)]"
        } else {
            if !result.isEmpty { result += "." }
            result += key.stringValue
        }
    }
    return result
}

// MARK: - Types with their own wire form

/// Types the encoder writes without calling their `encode(to:)`: Optional (presence tag) and
/// the array types (count + elements, raw memory for plain numbers).
protocol BinaryEncodingSpecial {
    /// `value` is always of type `Self`; taking it generically avoids boxing it.
    static func encodeSpecial<V>(_ value: V, into core: BinaryEncodingCore) throws
}

extension Optional: BinaryEncodingSpecial where Wrapped: Encodable {
    static func encodeSpecial<V>(_ value: V, into core: BinaryEncodingCore) throws {
        switch unsafeBitCast(value, to: Self.self) {
        case .none:
            core.bytes.append(0)
        case .some(let wrapped):
            core.bytes.append(1)
            try core.encodeValue(wrapped)
        }
    }
}

extension Array: BinaryEncodingSpecial where Element: Encodable {
    static func encodeSpecial<V>(_ value: V, into core: BinaryEncodingCore) throws {
        try unsafeBitCast(value, to: Self.self).withUnsafeBufferPointer { try core.encodeElements($0) }
    }
}

extension ArraySlice: BinaryEncodingSpecial where Element: Encodable {
    static func encodeSpecial<V>(_ value: V, into core: BinaryEncodingCore) throws {
        try unsafeBitCast(value, to: Self.self).withUnsafeBufferPointer { try core.encodeElements($0) }
    }
}

extension ContiguousArray: BinaryEncodingSpecial where Element: Encodable {
    static func encodeSpecial<V>(_ value: V, into core: BinaryEncodingCore) throws {
        try unsafeBitCast(value, to: Self.self).withUnsafeBufferPointer { try core.encodeElements($0) }
    }
}

// MARK: - Encoder core

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

// MARK: - Containers

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

/// The last four types seen to have no special wire form: a tiny cache that lets the encoder and
/// decoder skip a protocol cast for the types a message repeats.
struct PlainTypeCache {
    private var slots: (ObjectIdentifier?, ObjectIdentifier?, ObjectIdentifier?, ObjectIdentifier?) = (
        nil, nil, nil, nil
    )
    private var next = 0

    @inline(__always)
    func contains(_ id: ObjectIdentifier) -> Bool {
        slots.0 == id || slots.1 == id || slots.2 == id || slots.3 == id
    }

    mutating func insert(_ id: ObjectIdentifier) {
        switch next & 3 {
        case 0: slots.0 = id
        case 1: slots.1 = id
        case 2: slots.2 = id
        default: slots.3 = id
        }
        next &+= 1
    }
}
