/// The pool's own compact protocol between the parent and a worker, carried in message frames.
///
/// Parent → worker: `install` (a function value, once per worker), `jobs`, `shutdown`.
/// Worker → parent: `ready`, then `results`. Hand-written rather than `Codable` because this is
/// the hot path: one frame carries many jobs, so a trivial task costs a few hundred
/// nanoseconds, not a system call.
///
/// A `jobs` frame is a varint count of runs; a run is jobs of one function (and, in the parent,
/// of one map or call): varint function id, varint job count, each job's varint id and varint
/// item count, then one blob (fixed32 length, bytes) holding every item of the run as one
/// encoded `[Input]`. A `results` frame is runs until its end; a run answers a stretch of one
/// `jobs` run: varint job count, each job's varint id, status byte and, unless the status is
/// ``Status/values``, a blob; then, when any job has status `values`, one blob holding all
/// their outputs in order as one encoded `[Output]`. So a run costs one generic decode and one
/// encode on each side, whatever its number of jobs.
enum PoolWire {
    static let install: UInt8 = 1
    static let jobs: UInt8 = 2
    static let shutdown: UInt8 = 3
    static let results: UInt8 = 4
    static let ready: UInt8 = 5

    /// How a job ended in the worker.
    enum Status: UInt8 {
        /// Every item succeeded: the outputs are in the run's shared `[Output]` blob.
        case values = 0
        /// Some items threw: the job's blob is an encoded `[ItemOutcome<Output>]`.
        case mixed = 1
        /// The job as a whole failed (its function or input could not be decoded): the blob is
        /// an encoded ``ErrorReport``.
        case failed = 2
        /// Part of a job that is still running: a varint position (from the job's first item),
        /// then a blob holding an encoded `[ItemOutcome<Output>]` for the items from there. Always
        /// alone in its run; the job's own answer follows later, with those items `skipped`.
        case partial = 3
    }

    static func appendBytes(_ bytes: [UInt8], to out: inout [UInt8]) {
        WireWriter.appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    /// Reserves a blob's fixed32 length; ``endBlob(_:at:)`` fills it in once the bytes follow.
    static func beginBlob(_ out: inout [UInt8]) -> Int {
        out.append(contentsOf: [0, 0, 0, 0] as [UInt8])
        return out.count - 4
    }

    static func endBlob(_ out: inout [UInt8], at start: Int) {
        patchFixed32(UInt32(out.count - start - 4), in: &out, at: start)
    }

    static func appendBlob(_ bytes: [UInt8], to out: inout [UInt8]) {
        WireWriter.appendFixed(UInt32(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func patchFixed32(_ value: UInt32, in out: inout [UInt8], at start: Int) {
        out[start] = UInt8(truncatingIfNeeded: value)
        out[start + 1] = UInt8(truncatingIfNeeded: value >> 8)
        out[start + 2] = UInt8(truncatingIfNeeded: value >> 16)
        out[start + 3] = UInt8(truncatingIfNeeded: value >> 24)
    }
}

/// One item's result when not every item of a chunk succeeded.
enum ItemOutcome<Output: Codable>: Codable {
    case value(Output)
    case error(ErrorReport)
    /// Not run here: the pool already has this item's result.
    case skipped
}

/// Reads the pool protocol; every read is bounds-checked and fails with a typed error.
struct PoolReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position >= bytes.count }

    /// The byte after the next varint, without moving; `nil` at the end.
    func byteAfterVarint() -> UInt8? {
        var p = position
        while p < bytes.count, bytes[p] & 0x80 != 0 { p += 1 }
        p += 1
        return p < bytes.count ? bytes[p] : nil
    }

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

    /// A blob's place in the bytes (see ``PoolWire``).
    mutating func blob() throws(CodecError) -> Range<Int> {
        let n = Int(try fixed32())
        guard n <= bytes.count - position else { throw .lengthTooLarge(n) }
        defer { position += n }
        return position..<(position + n)
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
