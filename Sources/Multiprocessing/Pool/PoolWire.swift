/// The pool's own compact protocol between the parent and a worker, carried in message frames.
///
/// Parent → worker: `install` (a function value, once per worker), `jobs` (any number of jobs
/// in one frame), `shutdown`. Worker → parent: `results` (any number of job results in one
/// frame). Hand-written rather than `Codable` because this is the hot path: one frame carries
/// many jobs, so a trivial task costs a few hundred nanoseconds, not a system call.
enum PoolWire {
    static let install: UInt8 = 1
    static let jobs: UInt8 = 2
    static let shutdown: UInt8 = 3
    static let results: UInt8 = 4
    static let ready: UInt8 = 5

    /// How a job ended in the worker.
    enum Status: UInt8 {
        /// Every item succeeded: the bytes are the encoded `[Output]`.
        case values = 0
        /// Some items threw: the bytes are the encoded `[ItemOutcome<Output>]`.
        case mixed = 1
        /// The job as a whole failed (its function or input could not be decoded): the bytes
        /// are an encoded ``ErrorReport``.
        case failed = 2
    }

    static func appendBytes(_ bytes: [UInt8], to out: inout [UInt8]) {
        WireWriter.appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }
}

/// One item's result when not every item of a chunk succeeded.
enum ItemOutcome<Output: Codable>: Codable {
    case value(Output)
    case error(ErrorReport)
}

/// Reads the pool protocol; every read is bounds-checked and fails with a typed error.
struct PoolReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func byte() throws(CodecError) -> UInt8 {
        guard position < bytes.count else { throw .truncated(needed: 1, available: 0) }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func varint() throws(CodecError) -> UInt64 {
        var p = position
        let result = bytes.withUnsafeBytes { raw -> Result<UInt64, CodecError> in
            do throws(CodecError) {
                return .success(try WireReader.varint(in: raw, at: &p))
            } catch {
                return .failure(error)
            }
        }
        position = p
        return try result.get()
    }

    mutating func fixed32() throws(CodecError) -> UInt32 {
        guard bytes.count - position >= 4 else {
            throw .truncated(needed: 4, available: bytes.count - position)
        }
        var value: UInt32 = 0
        for i in 0..<4 { value |= UInt32(bytes[position + i]) << (8 * i) }
        position += 4
        return value
    }

    mutating func count() throws(CodecError) -> Int {
        let value = try varint()
        guard value <= UInt64(bytes.count - position) else { throw .lengthTooLarge(Int(clamping: value)) }
        return Int(value)
    }

    mutating func data() throws(CodecError) -> [UInt8] {
        let n = try count()
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }

    mutating func string() throws(CodecError) -> String {
        let raw = try data()
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidValue("invalid UTF-8") }
        return text
    }
}
