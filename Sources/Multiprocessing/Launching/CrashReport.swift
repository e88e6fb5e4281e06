#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a child crashed: the signal, the crashing thread's backtrace, and the function the crash
/// is blamed on. Sent by the child's crash handler the moment it crashes and symbolicated in
/// the parent, so it is there in release builds too (where a trap prints no message).
///
/// ```swift
/// } catch ProcessError.crashed(let crash) {
///     print(crash.crashingFunction ?? "unknown")   // "MyApp.Parser.field(at:) -> Swift.Int"
///     for frame in crash.backtrace { print(frame) }
/// }
/// ```
///
/// The backtrace is the crashing thread's stack as the machine has it: the functions the crash
/// happened in and their callers down to the thread's start. An `async` function's callers
/// across suspension points are not on it (the executor is). Names come from the binaries'
/// symbol tables (Linux, ELF); where there are none (a stripped binary), frames carry addresses.
public struct CrashReport: Sendable, Hashable, CustomStringConvertible {
    /// The signal that ended the child.
    public var signal: Signal
    /// For a memory fault (`SIGSEGV`, `SIGBUS`): the address that could not be accessed.
    public var faultAddress: UInt64?
    /// The name of the thread that crashed (at most 15 characters on Linux).
    public var threadName: String
    /// The crashing thread's frames, innermost first: the instruction that crashed, then the
    /// callers, each at the instruction after its call.
    public var frames: [CrashFrame]
    /// Which of ``frames`` the crash is blamed on: the first one outside the Swift runtime, the
    /// standard library and the system's libraries (a bounds check fails inside the standard
    /// library, but the bug is in the code that indexed).
    public var crashingFrameIndex: Int?

    /// Creates a report.
    public init(
        signal: Signal, faultAddress: UInt64?, threadName: String, frames: [CrashFrame],
        crashingFrameIndex: Int?
    ) {
        self.signal = signal
        self.faultAddress = faultAddress
        self.threadName = threadName
        self.frames = frames
        self.crashingFrameIndex = crashingFrameIndex
    }

    /// The frame the crash is blamed on.
    public var crashingFrame: CrashFrame? { crashingFrameIndex.map { frames[$0] } }

    /// The function the crash is blamed on, demangled (`"MyApp.Parser.run() async throws -> Swift.Int"`).
    public var crashingFunction: String? { crashingFrame?.symbol }

    /// `"SIGILL in MyApp.Parser.run() ... (thread 'mp-worker')"` and then one line per frame.
    public var description: String {
        var text = "\(signal.name)"
        if let function = crashingFunction { text += " in \(function)" }
        if let faultAddress { text += " accessing 0x\(String(faultAddress, radix: 16))" }
        if !threadName.isEmpty { text += " (thread '\(threadName)')" }
        return text + frameLines
    }

    /// One line per frame, each starting with a line break; the blamed frame is marked `->`.
    var frameLines: String {
        var text = ""
        for (index, frame) in frames.enumerated() {
            text += "\n  \(index)\(index == crashingFrameIndex ? " ->" : "")\t\(frame)"
        }
        return text
    }
}

/// One frame of a ``CrashReport``.
public struct CrashFrame: Sendable, Hashable, CustomStringConvertible {
    /// The instruction's address in the child.
    public var address: UInt64
    /// The function, demangled when it is a Swift function; `nil` when no symbol covers it.
    public var symbol: String?
    /// How many bytes past the start of ``symbol`` the instruction is.
    public var offset: UInt64?
    /// The path of the binary or library the instruction is in.
    public var image: String?

    /// Creates a frame.
    public init(address: UInt64, symbol: String?, offset: UInt64?, image: String?) {
        self.address = address
        self.symbol = symbol
        self.offset = offset
        self.image = image
    }

    /// `"MyApp.Parser.run() -> Swift.Int + 42 in my-app"`, or the address where there is no name.
    public var description: String {
        var text =
            symbol.map { name in offset.map { "\(name) + \($0)" } ?? name }
            ?? "0x\(String(address, radix: 16))"
        if let image { text += " in \(image.split(separator: "/").last.map(String.init) ?? image)" }
        return text
    }
}

extension CrashReport {
    /// Reads the report a child's crash handler sent (`CrashHandler.c`) and names its frames.
    /// `nil` when the payload is not one.
    init?(payload: [UInt8]) {
        var reader = CrashPayloadReader(payload)
        guard let magic = reader.u32(), magic == 0x5243_504D, reader.u32() == 1,
            let signal = reader.u32(), let code = reader.u32(), let address = reader.u64(),
            let flags = reader.u32(), let name = reader.bytes(16), let frameCount = reader.u32(),
            frameCount <= 1024
        else { return nil }
        var addresses: [UInt64] = []
        for _ in 0..<frameCount {
            guard let pc = reader.u64() else { return nil }
            addresses.append(pc)
        }
        guard let imageCount = reader.u32(), imageCount <= 1024 else { return nil }
        var images: [(start: UInt64, end: UInt64, offset: UInt64, path: String)] = []
        for _ in 0..<imageCount {
            guard let start = reader.u64(), let end = reader.u64(), let offset = reader.u64(),
                let length = reader.u16(), let path = reader.bytes(Int(length))
            else { return nil }
            images.append((start, end, offset, String(decoding: path, as: UTF8.self)))
        }
        let frames = addresses.enumerated().map { index, pc -> NamedFrame in
            guard let image = images.first(where: { pc >= $0.start && pc < $0.end }) else {
                return NamedFrame(address: pc, symbol: nil, offset: nil, image: nil)
            }
            // A caller's address is the instruction after its call: look up the call itself.
            let exact = index == 0 && flags & 1 != 0
            let lookup = exact || pc == 0 ? pc : pc - 1
            let path = image.path.hasPrefix("/") ? image.path : nil
            var frame = NamedFrame(address: pc, symbol: nil, offset: nil, image: path ?? image.path)
            if let path, let table = SymbolTable.of(path),
                let (mangled, offset) = table.symbol(atFileOffset: lookup - image.start + image.offset)
            {
                frame.symbol = Self.readable(SymbolTable.demangle(mangled) ?? mangled)
                frame.offset = exact ? offset : offset + 1
                frame.mangledSymbol = mangled
            }
            return frame
        }
        self.init(
            signal: Signal(rawValue: Int32(bitPattern: signal)),
            faultAddress: (signal == UInt32(SIGSEGV) || signal == UInt32(SIGBUS))
                && Int32(bitPattern: code) > 0
                ? address : nil,
            threadName: String(decoding: name.prefix { $0 != 0 }, as: UTF8.self),
            frames: frames.map(\.frame),
            crashingFrameIndex: Self.blame(frames))
    }

    /// A demangled name without the compiler's names for the pieces of an `async` function:
    /// `"(1) suspend resume partial function for App.Parse.run() async throws -> Int"` is
    /// `"App.Parse.run() async throws -> Int"` to its reader.
    private static func readable(_ name: String) -> String {
        guard name.hasPrefix("("), let range = name.firstRange(of: " partial function for ") else {
            return name
        }
        return String(name[range.upperBound...])
    }

    /// The first frame in the program's own code: not the Swift runtime or standard library,
    /// not the C library, the loader, Dispatch or the unwinder.
    private static func blame(_ frames: [NamedFrame]) -> Int? {
        let system = [
            "libswift", "libc.so", "libc-", "ld-linux", "ld64.so", "libpthread", "libdispatch",
            "libBlocksRuntime",
            "libgcc_s", "libstdc++", "libm.so", "linux-vdso", "[vdso]",
        ]
        for (index, frame) in frames.enumerated() where frame.frame.symbol != nil {
            let file = frame.frame.image?.split(separator: "/").last.map(String.init) ?? ""
            if system.contains(where: { file.hasPrefix($0) }) { continue }
            // The standard library linked statically, or specialized into the program (but not
            // the program's own extensions of its types).
            if let mangled = frame.mangledSymbol, mangled.hasPrefix("$ss") || mangled.hasPrefix("$sS"),
                !(frame.frame.symbol ?? "").contains("(extension in ")
                    || (frame.frame.symbol ?? "").contains("(extension in Swift)")
            {
                continue
            }
            return index
        }
        return frames.isEmpty ? nil : 0
    }
}

/// A frame with the mangled name it was found under (to recognise the standard library's).
private struct NamedFrame {
    var frame: CrashFrame
    var mangledSymbol: String?

    init(address: UInt64, symbol: String?, offset: UInt64?, image: String?) {
        frame = CrashFrame(address: address, symbol: symbol, offset: offset, image: image)
    }

    var symbol: String? {
        get { frame.symbol }
        set { frame.symbol = newValue }
    }

    var offset: UInt64? {
        get { frame.offset }
        set { frame.offset = newValue }
    }
}

private struct CrashPayloadReader {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func bytes(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, position + count <= bytes.count else { return nil }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard let raw = bytes(MemoryLayout<T>.size) else { return nil }
        return raw.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    mutating func u16() -> UInt16? { integer(UInt16.self) }
    mutating func u32() -> UInt32? { integer(UInt32.self) }
    mutating func u64() -> UInt64? { integer(UInt64.self) }
}
