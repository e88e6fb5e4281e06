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
