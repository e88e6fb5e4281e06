/// The one shared word that says which part of a container's log is valid: a sequence number
/// (high 32 bits) and the length of the active region in 8-byte words (low 32 bits). Writers
/// publish a change with a single atomic store of this word.
///
/// The sequence counts compactions twice: it is odd while a compaction writes the next
/// generation into the inactive region, even once that region is published. The active region
/// is that of generation `sequence >> 1` (regions alternate).
@usableFromInline
struct LogPosition: Equatable, Sendable {
    @usableFromInline let raw: UInt64

    @inlinable init(raw: UInt64) { self.raw = raw }

    @inlinable init(sequence: UInt32, words: UInt32) { raw = UInt64(sequence) << 32 | UInt64(words) }

    /// No position (a replica that has applied nothing).
    @inlinable static var none: LogPosition { LogPosition(raw: .max) }

    @inlinable var sequence: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) }
    @inlinable var words: UInt32 { UInt32(truncatingIfNeeded: raw) }
    @inlinable var byteCount: Int { Int(words) * 8 }
    @inlinable var generation: UInt32 { sequence >> 1 }
    @inlinable var region: Int { Int(generation & 1) }
    @inlinable var isCompacting: Bool { sequence & 1 == 1 }

    /// Whether bytes copied from this position's region are still valid once the word reads
    /// `later`: no compaction has started writing into that region since. Regions alternate, so
    /// the next write into it comes two sequence steps after an even sequence (the compaction
    /// after next) and one after an odd one.
    @inlinable func regionIntact(at later: LogPosition) -> Bool {
        later.sequence &- sequence <= (isCompacting ? 1 : 2)
    }
}
