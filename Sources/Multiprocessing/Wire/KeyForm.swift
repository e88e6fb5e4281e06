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
