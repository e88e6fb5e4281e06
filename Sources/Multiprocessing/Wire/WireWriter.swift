/// Writes the wire's building blocks — zigzag LEB128 varints, little-endian fixed-width integers,
/// length-prefixed bytes and strings, blobs — for the codec (its top-level fast path and its
/// core), the pool protocol (see ``PoolWire``) and the queues' plain-array items. ``WireReader``
/// reads them back; the codec's format is described at the top of `BinaryEncoder.swift`.
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

    /// Writes the varint of `value` at the start of `buffer` and returns its length; `buffer` must
    /// hold at least `varintSize(value)` bytes (10 always suffice).
    @inline(__always)
    static func writeVarint(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var value = value
        var length = 0
        while value >= 0x80 {
            buffer[length] = UInt8(truncatingIfNeeded: value) | 0x80
            value >>= 7
            length += 1
        }
        buffer[length] = UInt8(truncatingIfNeeded: value)
        return length + 1
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

    /// Writes `bytes` behind their varint count (read by ``WireReader/data()``).
    static func appendBytes(_ bytes: [UInt8], to out: inout [UInt8]) {
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// Writes `bytes` as a blob: a fixed32 length, then the bytes (read by
    /// ``WireReader/blob()``). A fixed length lets a writer reserve it before the bytes exist
    /// (see ``beginBlob(_:)``).
    static func appendBlob(_ bytes: [UInt8], to out: inout [UInt8]) {
        appendFixed(UInt32(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// Reserves a blob's fixed32 length; ``endBlob(_:at:)`` fills it in once the bytes follow.
    static func beginBlob(_ out: inout [UInt8]) -> Int {
        out.append(contentsOf: [0, 0, 0, 0] as [UInt8])
        return out.count - 4
    }

    /// Fills in the length reserved at `start` by ``beginBlob(_:)``: every byte after it.
    static func endBlob(_ out: inout [UInt8], at start: Int) {
        patchFixed32(UInt32(out.count - start - 4), in: &out, at: start)
    }

    static func patchFixed32(_ value: UInt32, in out: inout [UInt8], at start: Int) {
        out[start] = UInt8(truncatingIfNeeded: value)
        out[start + 1] = UInt8(truncatingIfNeeded: value >> 8)
        out[start + 2] = UInt8(truncatingIfNeeded: value >> 16)
        out[start + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }

    /// Writes a key header (see the format notes at the top of `BinaryEncoder.swift`).
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
