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
