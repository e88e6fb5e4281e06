import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The function symbols of one ELF file (64-bit, little-endian), to name the addresses of a
/// crash report. Reads `.symtab` (every function, local ones too), or `.dynsym` when the file is
/// stripped. Tables are read once per file and kept, so naming a crash costs a lookup.
final class SymbolTable: Sendable {
    private struct Symbol: Sendable {
        let start: UInt64
        let size: UInt64
        let nameOffset: Int
    }

    private struct Segment: Sendable {
        let fileOffset: UInt64
        let address: UInt64
        let size: UInt64
    }

    private let symbols: [Symbol]
    private let names: [UInt8]
    private let segments: [Segment]

    private init(symbols: [Symbol], names: [UInt8], segments: [Segment]) {
        self.symbols = symbols
        self.names = names
        self.segments = segments
    }

    /// The (mangled) name of the function that contains `fileOffset` of the file, and how far
    /// into the function it is.
    func symbol(atFileOffset fileOffset: UInt64) -> (name: String, offset: UInt64)? {
        guard
            let segment = segments.first(where: {
                fileOffset >= $0.fileOffset && fileOffset - $0.fileOffset < $0.size
            })
        else { return nil }
        let address = fileOffset - segment.fileOffset + segment.address
        // The last symbol that starts at or before the address.
        var low = 0
        var high = symbols.count
        while low < high {
            let mid = (low + high) / 2
            if symbols[mid].start <= address { low = mid + 1 } else { high = mid }
        }
        var index = low - 1
        // Among symbols at or before it, the nearest one that contains it (aliases, size 0).
        while index >= 0 && low - index <= 8 {
            let symbol = symbols[index]
            if address < symbol.start + max(symbol.size, 1) {
                return (name(at: symbol.nameOffset), address - symbol.start)
            }
            index -= 1
        }
        return nil
    }

    private func name(at offset: Int) -> String {
        guard offset < names.count else { return "" }
        let end = names[offset...].firstIndex(of: 0) ?? names.count
        return String(decoding: names[offset..<end], as: UTF8.self)
    }

    // MARK: Loading

    private static let cache = Mutex<[String: SymbolTable]>([:])

    /// The table of the file at `path`, read on first use; `nil` when it cannot be read or is
    /// not an ELF file this reader understands. A file replaced since is read again.
    static func of(_ path: String) -> SymbolTable? {
        guard let info = try? Syscall.fileStatus(path) else { return nil }
        #if canImport(Darwin)
            let modified = info.st_mtimespec
        #else
            let modified = info.st_mtim
        #endif
        let key = "\(info.st_dev):\(info.st_ino):\(modified.tv_sec):\(modified.tv_nsec):\(path)"
        if let table = cache.withLock({ $0[key] }) { return table }
        guard let table = read(path) else { return nil }
        cache.withLock { cache in
            if cache.count >= 32 { cache.removeAll() }
            cache[key] = table
        }
        return table
    }

    private static func read(_ path: String) -> SymbolTable? {
        // The path comes from a child's report: never wait on it (a FIFO), never read past it.
        guard let fd = try? Syscall.open(path, O_RDONLY | O_NONBLOCK) else { return nil }
        defer { Syscall.close(fd) }
        guard let info = try? Syscall.fileStatus(fd), info.st_mode & S_IFMT == S_IFREG else { return nil }
        let fileSize = UInt64(info.st_size)
        func bytes(_ offset: UInt64, _ count: UInt64) -> [UInt8]? {
            guard count <= 256 << 20, offset <= fileSize, count <= fileSize - offset else { return nil }
            var buffer = [UInt8](repeating: 0, count: Int(count))
            var done = 0
            while done < buffer.count {
                let n = buffer.withUnsafeMutableBytes {
                    try? Syscall.pread(fd, $0.baseAddress! + done, $0.count - done, at: Int(offset) + done)
                }
                guard let n, n > 0 else { return nil }
                done += n
            }
            return buffer
        }
        guard let header = bytes(0, 64), header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C,
            header[3] == 0x46, header[4] == 2, header[5] == 1
        else { return nil }  // Not a 64-bit little-endian ELF file.
        let programOffset: UInt64 = header.load(32)
        let sectionOffset: UInt64 = header.load(40)
        let programEntrySize = UInt64(header.load(54) as UInt16)
        let programCount = UInt64(header.load(56) as UInt16)
        let sectionEntrySize = UInt64(header.load(58) as UInt16)
        let sectionCount = UInt64(header.load(60) as UInt16)
        guard programEntrySize >= 56, sectionEntrySize >= 64,
            let programs = bytes(programOffset, programEntrySize * programCount),
            let sections = bytes(sectionOffset, sectionEntrySize * sectionCount)
        else { return nil }

        var segments: [Segment] = []
        for i in 0..<Int(programCount) {
            let base = i * Int(programEntrySize)
            guard programs.load(base) as UInt32 == 1 else { continue }  // PT_LOAD
            segments.append(
                Segment(
                    fileOffset: programs.load(base + 8), address: programs.load(base + 16),
                    size: programs.load(base + 32)))
        }

        struct Section {
            let type: UInt32, offset: UInt64, size: UInt64, link: UInt32, entrySize: UInt64
        }
        let all = (0..<Int(sectionCount)).map { i -> Section in
            let base = i * Int(sectionEntrySize)
            return Section(
                type: sections.load(base + 4), offset: sections.load(base + 24),
                size: sections.load(base + 32),
                link: sections.load(base + 40), entrySize: sections.load(base + 56))
        }
        // SHT_SYMTAB has every function; SHT_DYNSYM only the exported ones.
        guard let table = all.first(where: { $0.type == 2 }) ?? all.first(where: { $0.type == 11 }),
            table.entrySize >= 24, Int(table.link) < all.count,
            let entries = bytes(table.offset, table.size),
            let names = bytes(all[Int(table.link)].offset, all[Int(table.link)].size)
        else { return nil }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(Int(table.size / table.entrySize))
        for i in 0..<Int(table.size / table.entrySize) {
            let base = i * Int(table.entrySize)
            let kind = (entries[base + 4] as UInt8) & 0xF
            guard kind == 2 || kind == 10 else { continue }  // STT_FUNC, STT_GNU_IFUNC
            let start: UInt64 = entries.load(base + 8)
            guard start != 0 else { continue }
            symbols.append(
                Symbol(
                    start: start, size: entries.load(base + 16), nameOffset: Int(entries.load(base) as UInt32)
                ))
        }
        symbols.sort { $0.start < $1.start }
        return SymbolTable(symbols: symbols, names: names, segments: segments)
    }

    /// The readable form of a Swift (or C++) symbol, or `nil` if `mangled` is neither.
    static func demangle(_ mangled: String) -> String? {
        mangled.withCString { raw -> String? in
            guard let readable = swift_demangle(raw, strlen(raw), nil, nil, 0) ?? mp_demangle_cxx(raw) else {
                return nil
            }
            defer { free(readable) }
            return String(cString: readable)
        }
    }
}

extension [UInt8] {
    /// A little-endian integer at `offset`, or 0 past the end.
    fileprivate func load<T: FixedWidthInteger>(_ offset: Int) -> T {
        guard offset >= 0, offset + MemoryLayout<T>.size <= count else { return 0 }
        return withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
