/// How a queue turns its items into bytes, chosen once from the element type (both ends agree:
/// the handle carries the element type).
enum QueueItemForm: Sendable {
    /// Plain numbers and `Bool`: their memory, with no encoding at all.
    case raw
    /// Arrays of plain numbers that the codec copies in bulk: the codec's own wire form (a varint
    /// count, then the elements' memory), written straight from the array, so a large array
    /// costs one copy into shared memory. ``BinaryDecoder`` reads it back on its fast path.
    case plainArray
    /// Anything else: ``BinaryEncoder`` and ``BinaryDecoder``.
    case codec

    static func of<Element>(_: Element.Type) -> QueueItemForm {
        let type: Any.Type = Element.self
        if type == Int.self || type == Double.self || type == UInt.self || type == Int64.self
            || type == UInt64.self || type == Int32.self || type == UInt32.self || type == Int16.self
            || type == UInt16.self || type == Int8.self || type == UInt8.self || type == Float.self
            || type == Bool.self
        {
            return .raw
        }
        let id = ObjectIdentifier(type)
        if id == PlainArrays.uint8 || id == PlainArrays.int || id == PlainArrays.double
            || id == PlainArrays.int64 || id == PlainArrays.int32 || id == PlainArrays.uint64
            || id == PlainArrays.float
        {
            return .plainArray
        }
        return .codec
    }

    /// Calls `body` with a plain array's wire form in two parts, the count prefix and the
    /// array's own memory, without copying either. `item` must be of a `.plainArray` type.
    static func withPlainArrayParts<Element>(
        _ item: Element, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) {
        let id = ObjectIdentifier(Element.self)
        if id == PlainArrays.uint8 {
            withParts(unsafeBitCast(item, to: [UInt8].self), body)
        } else if id == PlainArrays.int {
            withParts(unsafeBitCast(item, to: [Int].self), body)
        } else if id == PlainArrays.double {
            withParts(unsafeBitCast(item, to: [Double].self), body)
        } else if id == PlainArrays.int64 {
            withParts(unsafeBitCast(item, to: [Int64].self), body)
        } else if id == PlainArrays.int32 {
            withParts(unsafeBitCast(item, to: [Int32].self), body)
        } else if id == PlainArrays.uint64 {
            withParts(unsafeBitCast(item, to: [UInt64].self), body)
        } else if id == PlainArrays.float {
            withParts(unsafeBitCast(item, to: [Float].self), body)
        } else {
            preconditionFailure("\(Element.self) is not a plain array")
        }
    }

    private static func withParts<Number>(
        _ array: [Number], _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) {
        // The count as a varint, as the codec writes it (at most 10 bytes).
        var prefix: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &prefix) { prefix in
            let length = WireWriter.writeVarint(UInt64(array.count), into: prefix)
            array.withUnsafeBytes { memory in
                body(UnsafeRawBufferPointer(rebasing: prefix[..<length]), memory)
            }
        }
    }
}
