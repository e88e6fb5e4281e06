/// The pool's own compact protocol between the parent and a worker, carried in message frames.
///
/// Parent → worker: `install` (a function value, once per worker), `jobs`, `shutdown`.
/// Worker → parent: `ready`, then `results`. Hand-written rather than `Codable` because this is
/// the hot path: one frame carries many jobs, so a trivial task costs a few hundred
/// nanoseconds, not a system call.
///
/// A `jobs` frame is a varint count of runs; a run is jobs of one function (and, in the parent,
/// of one map or call): varint function id shifted left by one, its low bit set when a trace
/// context follows (a varint count of key and value strings), varint job count, each job's varint id and varint
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

    /// Appends a trace context: a varint count, then each key and value.
    static func appendCarrier(_ carrier: [String: String], to frame: inout [UInt8]) {
        WireWriter.appendVarint(UInt64(carrier.count), to: &frame)
        for (key, value) in carrier {
            WireWriter.appendString(key, to: &frame)
            WireWriter.appendString(value, to: &frame)
        }
    }

    /// Reads what ``appendCarrier(_:to:)`` wrote.
    static func readCarrier(_ reader: inout WireReader) throws -> [String: String] {
        var carrier: [String: String] = [:]
        for _ in 0..<(try reader.count()) {
            let key = try reader.string()
            carrier[key] = try reader.string()
        }
        return carrier
    }

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
}

/// One item's result when not every item of a chunk succeeded.
enum ItemOutcome<Output: Codable>: Codable {
    case value(Output)
    case error(ErrorReport)
    /// Not run here: the pool already has this item's result.
    case skipped
}
