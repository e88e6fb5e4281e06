import CMultiprocessing
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Fixtures

/// Descriptors a hostile peer floods with: duplicates of one pipe end, so that how many this
/// process holds can be counted in /proc/self/fd whatever other tests open meanwhile.
final class MarkedDescriptor {
    let fd: Int32
    private let target: String
    private let other: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        precondition(mp_pipe(&fds) == 0)
        fd = fds[0]
        other = fds[1]
        target = Self.link(fd) ?? "?"
    }

    deinit {
        close(fd)
        close(other)
    }

    /// How many descriptors of this process refer to the marked pipe end, the original included.
    var openCount: Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let number = Int32(name), let link = Self.link(number) else { continue }
            // The original and its duplicates share the pipe's inode; the write end differs only in
            // its number, so it is excluded by number.
            if link == target && number != other { count += 1 }
        }
        return count
    }

    private static func link(_ fd: Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, 255)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The 8-byte frame header: magic, kind, descriptor count, payload length.
func frameHeader(kind: UInt8 = 1, descriptors: UInt16, length: UInt32) -> [UInt8] {
    [0xB5, kind] + withUnsafeBytes(of: descriptors.littleEndian, Array.init)
        + withUnsafeBytes(of: length.littleEndian, Array.init)
}

/// Sends `bytes` with `count` duplicates of `fd` in one message; false when the kernel refuses.
@discardableResult
func sendWithCopies(_ socket: Int32, _ bytes: [UInt8], of fd: Int32, count: Int) -> Bool {
    let fds = [Int32](repeating: fd, count: count)
    let sent = bytes.withUnsafeBytes { raw in
        fds.withUnsafeBufferPointer {
            mp_sendmsg_fds(
                socket, raw.baseAddress, raw.count, $0.baseAddress, Int32(count), Int32(MSG_DONTWAIT))
        }
    }
    return sent == bytes.count
}

/// How a hostile peer misuses descriptor passing.
enum DescriptorFlood: String, CaseIterable, CustomTestStringConvertible, Sendable {
    /// A small frame's header announces 64 and arrives with them, then 99 one-byte writes of its
    /// payload each bring 64 more, and the frame is never completed (the issue's report).
    case insideSmallFrame
    /// The same inside a large frame, whose payload is received into its own storage.
    case insideLargeFrame
    /// Whole frames that announce no descriptor but bring 64 each.
    case unannounced
    /// One message with 200 descriptors, more than any frame may carry.
    case oversized

    var testDescription: String { rawValue }
}

/// Lowers this process's descriptor limit, fills every free slot, runs `body`, then frees them
/// and restores the limit. Only in a child: the limit is per process.
func atDescriptorLimit<T>(_ body: () throws -> T) rethrows -> T {
    var saved = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
    var low = saved
    low.rlim_cur = 512
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &low)
    var fillers: [Int32] = []
    while true {
        let fd = dup(0)
        if fd < 0 { break }
        fillers.append(fd)
    }
    defer {
        for fd in fillers { close(fd) }
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
    }
    return try body()
}

/// In a child: a frame whose descriptors cannot be installed (the descriptor limit), and a
/// queue item whose memory descriptor cannot be, and what each receiver reports.
struct WireDescriptorLimitProbe: ProcessTask {
    func run() async throws -> [String] {
        var report: [String] = []
        // A frame with two descriptors, received while no descriptor slot is free.
        let (sender, receiver) = try FramedSocket.pair()
        try sender.sendBlocking(.message, [1, 2, 3], descriptors: [0, 0])
        let first: Result<Frame, ChannelError> = atDescriptorLimit {
            Result { () throws(ChannelError) in try receiver.receiveBlocking(timeout: .seconds(5)) }
        }
        switch first {
        case .success(let frame):
            report.append("frame: delivered with \(frame.descriptors.count) descriptor(s)")
            for fd in frame.descriptors { close(fd) }
        case .failure(let error):
            report.append("frame: \(error)")
        }
        do {
            _ = try receiver.receiveBlocking(timeout: .seconds(5))
            report.append("frame again: delivered")
        } catch {
            report.append("frame again: \(error)")
        }
        // A large queue item (its memory travels as a descriptor beside the ring).
        let queue = try ProcessQueue<[UInt8]>(ringBytes: 4096)
        let item = [UInt8](repeating: 7, count: 3000)
        try queue.putNowait(item)
        let taken: Result<[UInt8], QueueError> = atDescriptorLimit {
            Result { () throws(QueueError) in try queue.getNowait() }
        }
        switch taken {
        case .success(let value): report.append("queue: got \(value.count) bytes")
        case .failure(let error): report.append("queue: \(error)")
        }
        do {
            let value = try queue.getNowait()
            report.append("queue again: got \(value == item ? "the item" : "something else")")
        } catch {
            report.append("queue again: \(error)")
        }
        return report
    }
}

/// A message whose descriptors are decoded before a field that may be corrupt.
struct CarriesDescriptors: Codable {
    var passed: PassedDescriptors
    var after: Int
}

// MARK: - Tests

@Suite("Chaos: wire")
struct ChaosWireTests {
    /// A raw socket for the hostile peer, and a framed receiver on the other end.
    func rawPair() throws -> (Int32, FramedSocket) {
        let fds = try Syscall.socketPair()
        return (fds.0, FramedSocket(fd: fds.1))
    }

    @Test(
        "a peer flooding descriptors is refused with a typed error, and none stays open",
        arguments: DescriptorFlood.allCases)
    func descriptorFlood(_ flood: DescriptorFlood) throws {
        let marked = MarkedDescriptor()
        let (raw, socket) = try rawPair()
        defer { close(raw) }
        switch flood {
        case .insideSmallFrame:
            sendWithCopies(raw, frameHeader(descriptors: 64, length: 1000), of: marked.fd, count: 64)
            for _ in 0..<99 where !sendWithCopies(raw, [0], of: marked.fd, count: 64) { break }
        case .insideLargeFrame:
            sendWithCopies(raw, frameHeader(descriptors: 0, length: 1 << 20) + [0], of: marked.fd, count: 0)
            for _ in 0..<100 where !sendWithCopies(raw, [0], of: marked.fd, count: 64) { break }
        case .unannounced:
            for _ in 0..<100
            where !sendWithCopies(raw, frameHeader(descriptors: 0, length: 1) + [0], of: marked.fd, count: 64)
            {
                break
            }
        case .oversized:
            sendWithCopies(raw, frameHeader(descriptors: 64, length: 1) + [0], of: marked.fd, count: 200)
        }
        var delivered = 0
        var refusal: ChannelError?
        for _ in 0..<200 {
            do {
                let frame = try socket.receiveBlocking(timeout: .seconds(5))
                delivered += 1
                for fd in frame.descriptors { close(fd) }
            } catch {
                refusal = error
                break
            }
        }
        guard case .unexpectedDescriptors(let received, let allowed)? = refusal else {
            Issue.record("expected unexpectedDescriptors, got \(String(describing: refusal))")
            return
        }
        #expect(received > allowed)
        #expect(delivered <= 1, "at most the frame that came whole before the flood is delivered")
        // Everything the peer sent that reached this process is closed already, and stays so.
        #expect(marked.openCount == 1)
        #expect(throws: ChannelError.unexpectedDescriptors(received: received, allowed: allowed)) {
            _ = try socket.receiveBlocking(timeout: .seconds(5))
        }
        #expect(throws: ChannelError.unexpectedDescriptors(received: received, allowed: allowed)) {
            _ = try socket.poll(timeout: .seconds(1))
        }
        #expect(marked.openCount == 1)
    }

    @Test("frames with their announced descriptors still pass, back to back")
    func announcedDescriptorsPass() throws {
        let marked = MarkedDescriptor()
        let (sender, receiver) = try FramedSocket.pair()
        for count in [64, 0, 1, 64, 3] {
            try sender.sendBlocking(
                .message, [UInt8](repeating: 1, count: 10),
                descriptors: .init(repeating: marked.fd, count: count))
        }
        // And one large frame whose payload is received into its own storage.
        try sender.sendBlocking(
            .bytes, [UInt8](repeating: 2, count: 200_000), descriptors: [marked.fd, marked.fd])
        var counts: [Int] = []
        for _ in 0..<6 {
            let frame = try receiver.receiveBlocking(timeout: .seconds(5))
            counts.append(frame.descriptors.count)
            for fd in frame.descriptors { close(fd) }
        }
        #expect(counts == [64, 0, 1, 64, 3, 2])
        #expect(marked.openCount == 1)
    }

    @Test("descriptors decoded before a corrupt field are closed, not leaked (found by the frames fuzzer)")
    func partialDecodeLeaksNothing() throws {
        let marked = MarkedDescriptor()
        let outgoing = DescriptorTransfer.Outgoing()
        var encoder = BinaryEncoder()
        encoder.userInfo[DescriptorTransfer.key] = outgoing
        var bytes = try encoder.encode(
            CarriesDescriptors(passed: PassedDescriptors([marked.fd, marked.fd, marked.fd]), after: 5))
        // Rename the key "after" so that decoding fails once the descriptors are taken.
        let key = Array("after".utf8)
        let at = try #require(
            (0...(bytes.count - key.count)).first { Array(bytes[$0..<($0 + key.count)]) == key })
        bytes[at + 4] = UInt8(ascii: "x")
        let incoming = DescriptorTransfer.Incoming((0..<3).map { _ in dup(marked.fd) })
        var decoder = BinaryDecoder()
        decoder.userInfo[DescriptorTransfer.key] = incoming
        #expect(throws: CodecError.self) { try decoder.decode(CarriesDescriptors.self, from: bytes) }
        incoming.closeUnclaimed()
        #expect(marked.openCount == 1)
        // Decoded whole, the descriptors belong to whoever takes them, once.
        bytes[at + 4] = UInt8(ascii: "r")
        let again = DescriptorTransfer.Incoming((0..<3).map { _ in dup(marked.fd) })
        decoder.userInfo[DescriptorTransfer.key] = again
        let message = try decoder.decode(CarriesDescriptors.self, from: bytes)
        let taken = message.passed.take()
        #expect(taken.count == 3 && message.passed.take().isEmpty)
        #expect(marked.openCount == 4)
        for fd in taken { close(fd) }
        #expect(marked.openCount == 1)
    }

    @Test("descriptors the kernel drops at the descriptor limit are reported, for frames and queue items")
    func descriptorLimit() async throws {
        let child = try ChildProcess(WireDescriptorLimitProbe())
        try await child.start()
        let report = try await child.value
        #expect(
            report == [
                "frame: \(ChannelError.descriptorsDropped)",
                "frame again: \(ChannelError.descriptorsDropped)",
                "queue: \(QueueError.system(SystemError("recvmsg", code: EMFILE)))",
                "queue again: got the item",
            ])
    }
}

// MARK: - Nesting on small stacks

/// Work handed to a thread started with a chosen stack size.
final class ThreadWork {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs `body` on a new thread with a stack of `stackSize` bytes and waits for it.
func onThread<T>(stackSize: Int, _ body: @escaping () -> T) -> T {
    var result: T?
    let work = ThreadWork { result = body() }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    precondition(pthread_attr_setstacksize(&attributes, stackSize) == 0)
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, &attributes,
        { raw in
            Unmanaged<ThreadWork>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(work).toOpaque())
    precondition(rc == 0)
    pthread_join(thread, nil)
    return result!
}

/// Shapes of recursion, each built `n` levels deep without recursion.
indirect enum Chain: Codable, Equatable {
    case end
    case link(Chain)
    static func make(_ n: Int) -> Chain { (0..<n).reduce(.end) { inner, _ in .link(inner) } }
}

indirect enum MaybeChain: Codable, Equatable {
    case end
    case link(MaybeChain?)
    static func make(_ n: Int) -> MaybeChain { (0..<n).reduce(.end) { inner, _ in .link(inner) } }
}

final class Linked: Codable, Equatable {
    var next: Linked?
    var label: String
    init(next: Linked?, label: String) {
        self.next = next
        self.label = label
    }
    static func == (a: Linked, b: Linked) -> Bool { a.label == b.label && a.next == b.next }
    static func make(_ n: Int) -> Linked {
        (0..<n).reduce(Linked(next: nil, label: "end")) { inner, i in Linked(next: inner, label: "\(i)") }
    }
}

struct Branches: Codable, Equatable {
    var children: [Branches]
    static func make(_ n: Int) -> Branches {
        (0..<n).reduce(Branches(children: [])) { inner, _ in Branches(children: [inner]) }
    }
}

/// Encodes its child through an unkeyed container.
struct Positional: Codable, Equatable {
    var depth: Int
    var child: [Positional]
    init(depth: Int, child: [Positional]) {
        self.depth = depth
        self.child = child
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(depth)
        for element in child { try container.encode(element) }
    }
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        depth = try container.decode(Int.self)
        child = container.isAtEnd ? [] : [try container.decode(Positional.self)]
    }
    static func make(_ n: Int) -> Positional {
        (0..<n).reduce(Positional(depth: 0, child: [])) { inner, i in Positional(depth: i + 1, child: [inner])
        }
    }
}

struct Wrapped<Value: Codable & Equatable>: Codable, Equatable {
    var value: Value
}

indirect enum Generic: Codable, Equatable {
    case end
    case wrap(Wrapped<Wrapped<Generic>>)
    static func make(_ n: Int) -> Generic {
        (0..<n).reduce(.end) { inner, _ in .wrap(Wrapped(value: Wrapped(value: inner))) }
    }
}

struct Directory: Codable, Equatable {
    var entries: [String: Directory]
    static func make(_ n: Int) -> Directory {
        (0..<n).reduce(Directory(entries: [:])) { inner, _ in Directory(entries: ["d": inner]) }
    }
}

/// One shape of nesting: the deepest value the default encoder accepts, and hostile bytes far
/// deeper (encoded with the limit lifted, on a large stack).
struct NestingShape: Sendable, CustomTestStringConvertible {
    let name: String
    /// Encodes the value `n` levels of the shape deep with `encoder`.
    let encode: @Sendable (Int, BinaryEncoder) throws(CodecError) -> [UInt8]
    /// Decodes and compares with the value `n` levels deep; true when equal.
    let decodesTo: @Sendable ([UInt8], Int) throws(CodecError) -> Bool

    var testDescription: String { name }

    static func of<V: Codable & Equatable & SendableMetatype>(
        _ name: String, _ make: @escaping @Sendable (Int) -> V
    ) -> NestingShape {
        NestingShape(
            name: name,
            encode: { n, encoder throws(CodecError) in try encoder.encode(make(n)) },
            decodesTo: { bytes, n throws(CodecError) in
                try BinaryDecoder().decode(V.self, from: bytes) == make(n)
            })
    }

    static let all: [NestingShape] = [
        .of("enum with a payload", Chain.make),
        .of("enum with an optional payload", MaybeChain.make),
        .of("keyed class with an optional", Linked.make),
        .of("keyed struct with an array", Branches.make),
        .of("unkeyed container", Positional.make),
        .of("nested generic structs", Generic.make),
        .of("dictionary", Directory.make),
    ]
}

extension ChaosWireTests {
    @Test(
        "nesting at the depth limit decodes, and beyond it fails typed, on 128/256/512 KiB stacks",
        arguments: NestingShape.all)
    func nestingOnSmallStacks(_ shape: NestingShape) throws {
        // The deepest value of this shape the default encoder accepts.
        var n = 0
        while (try? shape.encode(n + 1, BinaryEncoder())) != nil { n += 1 }
        #expect(n > 0)
        #expect(throws: CodecError.nestingTooDeep(limit: BinaryEncoder().maximumDepth)) {
            _ = try shape.encode(n + 1, BinaryEncoder())
        }
        let atLimit = try shape.encode(n, BinaryEncoder())
        // Far deeper, as a hostile peer would send: encoded on a large stack with no limit.
        var permissive = BinaryEncoder()
        permissive.maximumDepth = .max
        let hostile = onThread(stackSize: 64 << 20) {
            Result { () throws(CodecError) in try shape.encode(2000, permissive) }
        }
        let hostileBytes = try hostile.get()
        for stackSize in [128 << 10, 256 << 10, 512 << 10] {
            let (exact, deep, encoded) = onThread(stackSize: stackSize) {
                (
                    Result { () throws(CodecError) in try shape.decodesTo(atLimit, n) },
                    Result { () throws(CodecError) in try shape.decodesTo(hostileBytes, 2000) },
                    Result { () throws(CodecError) in try shape.encode(n, BinaryEncoder()) }
                )
            }
            #expect(try exact.get(), "\(stackSize >> 10) KiB")
            #expect(throws: CodecError.nestingTooDeep(limit: BinaryDecoder().maximumDepth)) { try deep.get() }
            #expect(try encoded.get() == atLimit)
        }
    }
}
