#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Small file reads for `/proc` and `/sys`, without Foundation.
enum FileSystem {
    /// The whole file as a string, or `nil` when it cannot be read. Bounded to `limit` bytes.
    static func readText(_ path: String, limit: Int = 1 << 20) -> String? {
        guard let fd = try? Syscall.open(path, O_RDONLY) else { return nil }
        defer { Syscall.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < limit {
            let n = chunk.withUnsafeMutableBytes { try? Syscall.read(fd, $0.baseAddress, $0.count) }
            guard let n else { return nil }  // A read error: the text would be cut short.
            guard n > 0 else { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
