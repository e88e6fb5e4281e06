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
