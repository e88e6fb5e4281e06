/// Where a process-shared object lives: a segment and a byte offset in it. Several objects can
/// share one segment (a ``SharedValue`` keeps its lock next to its value).
struct SharedPlacement: Sendable, Codable {
    let memory: SharedMemory
    let offset: Int

    /// A fresh zeroed segment just big enough for `size` bytes.
    static func fresh(size: Int) throws(SyncError) -> SharedPlacement {
        do {
            return SharedPlacement(memory: try SharedMemory(size: size), offset: 0)
        } catch {
            throw .memory(error)
        }
    }

    init(memory: SharedMemory, offset: Int) {
        self.memory = memory
        self.offset = offset
    }

    var address: UnsafeMutableRawPointer { memory.baseAddress + offset }

    /// Decodes a placement and checks that `size` bytes at its offset lie inside the segment and
    /// are 8-byte aligned, so a corrupt handle cannot point outside the mapping.
    static func decode(_ what: String, size: Int, from decoder: any Decoder) throws -> SharedPlacement {
        let placement = try SharedPlacement(from: decoder)
        guard placement.offset >= 0, placement.offset % 8 == 0,
            placement.offset <= placement.memory.size - size
        else {
            throw SharedMemoryError.layoutMismatch(
                "\(what) at offset \(placement.offset) does not fit a segment of \(placement.memory.size) bytes"
            )
        }
        return placement
    }
}
