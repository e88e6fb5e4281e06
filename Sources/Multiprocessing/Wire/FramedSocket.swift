import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a frame carries. Typed messages and raw bytes share a channel; the launch protocol uses
/// its own kinds on the same framing.
enum FrameKind: UInt8, Sendable {
    case message = 0
    case bytes = 1
    case launch = 2
    case outcome = 3
    /// A child's crash report, written by its signal handler (`CrashHandler.c`).
    case crash = 4

    var name: String {
        switch self {
        case .message: "a typed message"
        case .bytes: "raw bytes"
        case .launch: "a launch request"
        case .outcome: "a task outcome"
        case .crash: "a crash report"
        }
    }
}

/// One frame: its kind, its payload and the descriptors that travelled with it.
struct Frame: Sendable {
    var kind: FrameKind
    var payload: [UInt8]
    var descriptors: [Int32]
}

/// Length-prefixed frames over a stream socket, with descriptors passed beside them.
///
/// Header (8 bytes): magic `0xB5`, kind, descriptor count (UInt16 LE), payload length
/// (UInt32 LE). Frames larger than the read buffer are received straight into their own
/// storage, so a 1 MiB message is copied once by the kernel and not again. A header that
/// announces more than `maximumFrameSize` is rejected before anything is allocated, and a
/// payload is only ever allocated as large as its announced length once its header is valid.
///
/// A frame's descriptors (at most ``maximumDescriptorsPerFrame``) travel with the first bytes
/// of its header, so before more is read the only descriptors a receiver may hold are those
/// of the frame in progress. Anything else (descriptors with no frame, more than a header
/// announces, descriptors inside a payload, or descriptors the kernel dropped) breaks the
/// connection: every held descriptor is closed at once and every later receive fails with the
/// same error. A receiver so never holds more than two frames' worth of a peer's descriptors.
final class FramedSocket: @unchecked Sendable {
    static let headerSize = 8
    static let magic: UInt8 = 0xB5
    static let bufferCapacity = 64 * 1024
    /// The most descriptors one frame may carry.
    static let maximumDescriptorsPerFrame = 64

    let fd: Int32
    let maximumFrameSize: Int
    private let closedFlag = Atomic<Bool>(false)
    private let sendLock = HandoffLock()
    private let receiveLock = HandoffLock()

    // Receive state: only touched while `receiveLock` is held.
    private let storage: UnsafeMutableRawBufferPointer
    private var readIndex = 0
    private var writeIndex = 0
    private var pendingDescriptors: [Int32] = []
    private var partial: (kind: FrameKind, descriptors: [Int32], payload: [UInt8], filled: Int, length: Int)?
    /// A large frame's storage starts at most this big and doubles as bytes arrive, so a peer
    /// that announces a huge frame and sends nothing costs nothing.
    static let initialLargeFrameStorage = 4 << 20
    private var sawEOF = false
    /// Set when the peer broke the protocol: every receive fails with it from then on.
    private var broken: ChannelError?
    // Send state: only touched while `sendLock` is held.
    private var scratch: [UInt8] = []

    /// Takes ownership of `fd` (made non-blocking).
    init(fd: Int32, maximumFrameSize: Int = 1 << 30) {
        self.fd = fd
        self.maximumFrameSize = min(maximumFrameSize, Int(UInt32.max))
        storage = .allocate(byteCount: Self.bufferCapacity, alignment: 16)
        // Fails only for a descriptor that is not open: every operation then reports EBADF.
        try? Syscall.setNonBlocking(fd)
    }

    deinit {
        if !closedFlag.load(ordering: .acquiring) { IOReactor.existing?.forget(fd) }
        Syscall.close(fd)
        storage.deallocate()
        for fd in pendingDescriptors { Syscall.close(fd) }
        if let partial { for fd in partial.descriptors { Syscall.close(fd) } }
    }

    var isClosed: Bool { closedFlag.load(ordering: .acquiring) }

    /// Releases the socket now (the peer sees EOF once no other process holds it) without
    /// freeing the descriptor number, which operations in flight on other threads may still
    /// use: a dead socket is put in its place and the number is closed on deinit.
    ///
    /// Never fails: in the rare case that no dead socket could ever be made (descriptors ran
    /// out before the first one), the socket is only marked closed here and released on deinit.
    func close() {
        guard !closedFlag.exchange(true, ordering: .acquiringAndReleasing) else { return }
        IOReactor.existing?.forget(fd)
        // Without a dead socket (or if dup2 fails), the socket is only marked closed (above).
        if let dead = DeadSocket.descriptor() { _ = try? Syscall.dup2(dead, fd) }
    }

    /// The process's reactor; failing to start it (no descriptor left) is a system error.
    private static func reactor() throws(IOReactor.WaitError) -> IOReactor {
        do {
            return try IOReactor.running()
        } catch {
            throw .failed(error)
        }
    }

    // MARK: Sending

    func send(_ kind: FrameKind, _ payload: [UInt8], descriptors: [Int32] = []) async throws(ChannelError) {
        await sendLock.lock()
        defer { sendLock.unlock() }
        var step = SendStep(kind: kind, payload: payload, descriptors: descriptors)
        while true {
            switch try sendSome(&step) {
            case .done: return
            case .wouldBlock:
                do {
                    try await Self.reactor().wait(fd, for: .write, unless: { self.isClosed })
                } catch .cancelled {
                    // A half-sent frame would corrupt the stream: finish it, whatever the task wants.
                    if step.started { try blockingWait(for: .write, deadline: nil) } else { throw .cancelled }
                } catch .failed(let error) {
                    throw .system(error)
                } catch {
                    throw .closed
                }
            }
        }
    }

    func sendBlocking(_ kind: FrameKind, _ payload: [UInt8], descriptors: [Int32] = []) throws(ChannelError) {
        sendLock.lockBlocking()
        defer { sendLock.unlock() }
        var step = SendStep(kind: kind, payload: payload, descriptors: descriptors)
        while case .wouldBlock = try sendSome(&step) {
            try blockingWait(for: .write, deadline: nil)
        }
    }

    private struct SendStep {
        var kind: FrameKind
        var payload: [UInt8]
        var descriptors: [Int32]
        var headerSent = 0
        var payloadSent = 0
        var started: Bool { headerSent > 0 }
    }

    private enum Progress { case done, wouldBlock }

    private func header(_ kind: FrameKind, _ count: Int, _ fds: Int) -> (UInt64) {
        var h: UInt64 = UInt64(Self.magic)
        h |= UInt64(kind.rawValue) << 8
        h |= UInt64(UInt16(fds)) << 16
        h |= UInt64(UInt32(count)) << 32
        return h.littleEndian
    }

    private func sendSome(_ step: inout SendStep) throws(ChannelError) -> Progress {
        if isClosed { throw .closed }
        let count = step.payload.count
        if count > maximumFrameSize { throw .frameTooLarge(length: count, limit: maximumFrameSize) }
        if step.descriptors.count > Self.maximumDescriptorsPerFrame {
            throw .corruptFrame(
                "at most \(Self.maximumDescriptorsPerFrame) descriptors travel with one frame")
        }
        if step.headerSent == 0 {
            let head = header(step.kind, count, step.descriptors.count)
            let sent: Int
            if count <= 16 * 1024 {
                // Small frame: header and payload in one system call.
                scratch.removeAll(keepingCapacity: true)
                withUnsafeBytes(of: head) { scratch.append(contentsOf: $0) }
                scratch.append(contentsOf: step.payload)
                let result = scratch.withUnsafeBytes { raw in
                    step.descriptors.withUnsafeBufferPointer { fds in
                        Result { () throws(SystemError) in
                            try Syscall.sendWithDescriptors(
                                fd, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count))
                        }
                    }
                }
                guard let n = try sendOutcome(result) else { return .wouldBlock }
                sent = n
                step.headerSent = min(sent, Self.headerSize)
                step.payloadSent = max(0, sent - Self.headerSize)
            } else {
                let result = withUnsafeBytes(of: head) { raw in
                    step.descriptors.withUnsafeBufferPointer { fds in
                        Result { () throws(SystemError) in
                            try Syscall.sendWithDescriptors(
                                fd, raw.baseAddress, raw.count, fds.baseAddress, Int32(fds.count))
                        }
                    }
                }
                guard let n = try sendOutcome(result) else { return .wouldBlock }
                sent = n
                step.headerSent = sent
            }
        }
        while step.headerSent < Self.headerSize {
            let head = header(step.kind, count, step.descriptors.count)
            let result = withUnsafeBytes(of: head) { raw in
                Result { () throws(SystemError) in
                    try Syscall.send(
                        fd, raw.baseAddress! + step.headerSent, Self.headerSize - step.headerSent)
                }
            }
            guard let sent = try sendOutcome(result) else { return .wouldBlock }
            step.headerSent += sent
        }
        while step.payloadSent < count {
            let offset = step.payloadSent
            let result = step.payload.withUnsafeBytes { raw in
                Result { () throws(SystemError) in
                    try Syscall.send(fd, raw.baseAddress! + offset, count - offset)
                }
            }
            guard let sent = try sendOutcome(result) else { return .wouldBlock }
            step.payloadSent += sent
        }
        return .done
    }

    /// The bytes one send took, `nil` when it would block; a peer that is gone is `.peerClosed`.
    @inline(__always)
    private func sendOutcome(_ result: Result<Syscall.IOResult<Int>, SystemError>) throws(ChannelError)
        -> Int?
    {
        switch result {
        case .success(.processed(let n)): return n
        case .success(.wouldBlock): return nil
        case .failure(let error):
            switch error.errno {
            case .brokenPipe, .connectionReset, .socketNotConnected: throw isClosed ? .closed : .peerClosed
            default: throw .system(error)
            }
        }
    }

    // MARK: Receiving

    /// Waits for the next frame. With a `timeout`, throws `.timedOut` when none arrives in time.
    func receive(timeout: Duration? = nil) async throws(ChannelError) -> Frame {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        guard await receiveLock.lock(until: deadline) else {
            throw Task.isCancelled ? .cancelled : .timedOut
        }
        defer { receiveLock.unlock() }
        while true {
            if let frame = try nextFrame() { return frame }
            if try fill() { continue }
            if try spinForData() { continue }
            do {
                if let deadline {
                    let remaining = deadline - .now
                    if remaining <= .zero { throw ChannelError.timedOut }
                    if try await !Self.reactor().wait(
                        fd, for: .read, timeout: remaining, unless: { self.isClosed })
                    {
                        throw ChannelError.timedOut
                    }
                } else {
                    try await Self.reactor().wait(fd, for: .read, unless: { self.isClosed })
                }
            } catch let error as ChannelError {
                throw error
            } catch IOReactor.WaitError.cancelled {
                throw .cancelled
            } catch IOReactor.WaitError.failed(let error) {
                throw .system(error)
            } catch {
                throw .closed
            }
        }
    }

    /// Blocks the calling thread until the next frame arrives or `timeout` passes.
    func receiveBlocking(timeout: Duration? = nil) throws(ChannelError) -> Frame {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        guard receiveLock.lockBlocking(until: deadline) else { throw .timedOut }
        defer { receiveLock.unlock() }
        while true {
            if let frame = try nextFrame() { return frame }
            if try fill() { continue }
            if try spinForData() { continue }
            try blockingWait(for: .read, deadline: deadline)
        }
    }

    /// A peer on another core often answers within microseconds: a few cheap retries before
    /// sleeping save two thread wake-ups per message. `true` when data (or EOF) arrived.
    private func spinForData() throws(ChannelError) -> Bool {
        for _ in 0..<20 {
            sched_yield()
            if try fill() { return true }
        }
        return false
    }

    /// `true` when a frame (or EOF) can be received without waiting, waiting up to `timeout`.
    ///
    /// Never waits longer than `timeout`, not even for a receiver that holds the end (an async
    /// `messages` loop waiting for the next frame): nothing can be received without waiting then.
    func poll(timeout: Duration) throws(ChannelError) -> Bool {
        let deadline = ContinuousClock.now + timeout
        guard receiveLock.lockBlocking(until: deadline) else {
            if isClosed { throw .closed }
            return false
        }
        defer { receiveLock.unlock() }
        while true {
            if isClosed { throw .closed }
            if let broken { throw broken }
            if sawEOF { return true }
            if try frameIsComplete() { return true }
            if try fill() { continue }
            do {
                try blockingWait(for: .read, deadline: deadline)
            } catch .timedOut {
                return false
            }
        }
    }

    /// Drains whatever is already buffered or readable, without waiting: the frames a dead
    /// process wrote before it died. `atEOF` tells whether nothing more can come (the peer has
    /// gone, or the stream broke); `failure` says why the stream broke, if it did (a peer that
    /// wrote bytes that are not frames), and is `nil` at a clean end.
    func drainAvailable() -> (frames: [Frame], atEOF: Bool, failure: ChannelError?) {
        receiveLock.lockBlocking()
        defer { receiveLock.unlock() }
        var frames: [Frame] = []
        while true {
            do throws(ChannelError) {
                if let frame = try nextFrame() {
                    frames.append(frame)
                    continue
                }
                if try !fill() { return (frames, sawEOF, nil) }
            } catch .peerClosed, .closed {
                return (frames, true, nil)
            } catch {
                return (frames, true, error)
            }
        }
    }

    private func frameIsComplete() throws(ChannelError) -> Bool {
        if partial != nil { return false }
        guard writeIndex - readIndex >= Self.headerSize else { return false }
        let (_, length, _) = try parseHeader()
        return writeIndex - readIndex >= Self.headerSize + length
    }

    private func parseHeader() throws(ChannelError) -> (FrameKind, Int, Int) {
        let base = storage.baseAddress! + readIndex
        var raw: UInt64 = 0
        withUnsafeMutableBytes(of: &raw) {
            $0.copyMemory(from: UnsafeRawBufferPointer(start: base, count: 8))
        }
        raw = UInt64(littleEndian: raw)
        guard UInt8(truncatingIfNeeded: raw) == Self.magic else {
            throw refuse(
                .corruptFrame("bad magic byte 0x\(String(UInt8(truncatingIfNeeded: raw), radix: 16))"))
        }
        guard let kind = FrameKind(rawValue: UInt8(truncatingIfNeeded: raw >> 8)) else {
            throw refuse(.corruptFrame("unknown frame kind \(UInt8(truncatingIfNeeded: raw >> 8))"))
        }
        let fdCount = Int(UInt16(truncatingIfNeeded: raw >> 16))
        let length = Int(UInt32(truncatingIfNeeded: raw >> 32))
        if length > maximumFrameSize { throw refuse(.frameTooLarge(length: length, limit: maximumFrameSize)) }
        if fdCount > Self.maximumDescriptorsPerFrame {
            throw refuse(
                .corruptFrame(
                    "\(fdCount) descriptors announced (at most \(Self.maximumDescriptorsPerFrame) travel with a frame)"
                ))
        }
        return (kind, length, fdCount)
    }

    /// Marks the connection broken by the peer: closes every descriptor held for it at once,
    /// drops what is buffered, and returns `error`, which every later receive throws too.
    private func refuse(_ error: ChannelError) -> ChannelError {
        if broken == nil { broken = error }
        for fd in pendingDescriptors { Syscall.close(fd) }
        pendingDescriptors = []
        if let partial { for fd in partial.descriptors { Syscall.close(fd) } }
        partial = nil
        (readIndex, writeIndex) = (0, 0)
        return broken ?? error
    }

    /// Before more is read, the descriptors held can only be those of the frame in progress:
    /// as many as its header announces, or at most ``maximumDescriptorsPerFrame`` while that
    /// header is incomplete, and none when no frame is in progress or its payload is being
    /// received (its descriptors were taken when it started).
    private func checkHeldDescriptors() throws(ChannelError) {
        guard !pendingDescriptors.isEmpty else { return }
        let available = writeIndex - readIndex
        let allowed: Int
        if partial != nil || available == 0 {
            allowed = 0
        } else if available < Self.headerSize {
            allowed = Self.maximumDescriptorsPerFrame
        } else {
            allowed = try parseHeader().2
        }
        if pendingDescriptors.count > allowed {
            throw refuse(.unexpectedDescriptors(received: pendingDescriptors.count, allowed: allowed))
        }
    }

    private func takeDescriptors(_ count: Int) throws(ChannelError) -> [Int32] {
        guard count <= pendingDescriptors.count else {
            throw refuse(
                .corruptFrame("frame announces \(count) descriptors, \(pendingDescriptors.count) arrived"))
        }
        let taken = Array(pendingDescriptors.prefix(count))
        pendingDescriptors.removeFirst(count)
        return taken
    }

    /// A complete frame from the buffer, or `nil`. Starts a direct receive for large frames.
    private func nextFrame() throws(ChannelError) -> Frame? {
        if isClosed { throw .closed }
        if let broken { throw broken }
        if let p = partial {
            guard p.filled == p.length else {
                if sawEOF {
                    throw refuse(
                        .corruptFrame("connection closed inside a frame (\(p.filled) of \(p.length) bytes)"))
                }
                return nil
            }
            partial = nil
            return Frame(kind: p.kind, payload: p.payload, descriptors: p.descriptors)
        }
        let available = writeIndex - readIndex
        guard available >= Self.headerSize else {
            if sawEOF {
                if available == 0 && pendingDescriptors.isEmpty { throw .peerClosed }
                throw refuse(
                    available == 0
                        ? .unexpectedDescriptors(received: pendingDescriptors.count, allowed: 0)
                        : .corruptFrame("connection closed inside a frame header"))
            }
            return nil
        }
        let (kind, length, fdCount) = try parseHeader()
        if available >= Self.headerSize + length {
            let start = readIndex + Self.headerSize
            let payload = [UInt8](UnsafeRawBufferPointer(rebasing: storage[start..<(start + length)]))
            readIndex += Self.headerSize + length
            let descriptors = try takeDescriptors(fdCount)
            if readIndex == writeIndex {
                (readIndex, writeIndex) = (0, 0)
                // Descriptors arrive with their own frame's header: any left now belong to no
                // frame. This frame is whole and is delivered; the connection is refused from
                // the next receive on, and those descriptors are closed now.
                if !pendingDescriptors.isEmpty {
                    _ = refuse(.unexpectedDescriptors(received: pendingDescriptors.count, allowed: 0))
                }
            }
            return Frame(kind: kind, payload: payload, descriptors: descriptors)
        }
        if sawEOF {
            throw refuse(
                .corruptFrame(
                    "connection closed inside a frame (\(available - Self.headerSize) of \(length) bytes)"))
        }
        if Self.headerSize + length > Self.bufferCapacity {
            // Too large for the buffer: receive the rest straight into the payload's own storage.
            let descriptors = try takeDescriptors(fdCount)
            guard pendingDescriptors.isEmpty else {
                for fd in descriptors { Syscall.close(fd) }
                throw refuse(
                    .unexpectedDescriptors(received: fdCount + pendingDescriptors.count, allowed: fdCount))
            }
            let buffered = available - Self.headerSize
            var payload = [UInt8](repeating: 0, count: min(length, Self.initialLargeFrameStorage))
            payload.withUnsafeMutableBytes { dst in
                dst.copyMemory(
                    from: UnsafeRawBufferPointer(
                        rebasing: storage[(readIndex + Self.headerSize)..<writeIndex]))
            }
            (readIndex, writeIndex) = (0, 0)
            partial = (kind, descriptors, payload, buffered, length)
        }
        return nil
    }

    /// One non-blocking read. `true` when bytes (or EOF) arrived, `false` when it would block.
    private func fill() throws(ChannelError) -> Bool {
        if isClosed { throw .closed }
        if let broken { throw broken }
        if sawEOF { return false }
        try checkHeldDescriptors()
        let inPayload = partial != nil
        // Room for all the kernel passes with one message, on the stack: a peer that sends more
        // than a frame may carry is seen (and refused), not silently cut short.
        let (result, received, notes) = withUnsafeTemporaryAllocation(
            of: Int32.self, capacity: Int(MP_SCM_MAX_FD)
        ) { fds in
            var count: Int32 = 0
            var notes: Int32 = 0
            let result = receiveSome(fds.baseAddress!, Int32(fds.count), &count, &notes)
            if count > 0 { pendingDescriptors.append(contentsOf: fds[..<Int(count)]) }
            return (result, Int(count), notes)
        }
        if notes & Int32(MP_FDS_TRUNCATED) != 0 { throw refuse(.descriptorsDropped) }
        if received > Self.maximumDescriptorsPerFrame || notes & Int32(MP_FDS_EXCESS) != 0 {
            throw refuse(.unexpectedDescriptors(received: received, allowed: Self.maximumDescriptorsPerFrame))
        }
        if inPayload && received > 0 {
            // A large frame's payload never carries descriptors: its own came with its header.
            throw refuse(.unexpectedDescriptors(received: received, allowed: 0))
        }
        switch result {
        case .success(.processed(let n)):
            if n == 0 { sawEOF = true }
            return true
        case .success(.wouldBlock):
            return false
        case .failure(let error):
            switch error.errno {
            case .connectionReset, .socketNotConnected, .brokenPipe:
                sawEOF = true
                return true
            default: throw .system(error)
            }
        }
    }

    /// One `recvmsg`, into the large frame in progress or else the buffer.
    private func receiveSome(
        _ fds: UnsafeMutablePointer<Int32>, _ capacity: Int32, _ count: inout Int32, _ notes: inout Int32
    ) -> Result<Syscall.IOResult<Int>, SystemError> {
        if var p = partial {
            partial = nil
            defer { partial = p }
            if p.filled == p.payload.count {
                p.payload += repeatElement(0, count: min(p.payload.count, p.length - p.payload.count))
            }
            let result = p.payload.withUnsafeMutableBytes { dst in
                Result { () throws(SystemError) in
                    try Syscall.receiveWithDescriptors(
                        fd, dst.baseAddress! + p.filled, dst.count - p.filled, fds, capacity, &count, &notes)
                }
            }
            if case .success(.processed(let n)) = result { p.filled += n }
            return result
        }
        if readIndex > 0 && Self.bufferCapacity - writeIndex < Self.bufferCapacity / 2 {
            let live = writeIndex - readIndex
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + readIndex, byteCount: live)
            (readIndex, writeIndex) = (0, live)
        }
        let result = Result { () throws(SystemError) in
            try Syscall.receiveWithDescriptors(
                fd, storage.baseAddress! + writeIndex, Self.bufferCapacity - writeIndex, fds, capacity,
                &count, &notes)
        }
        if case .success(.processed(let n)) = result { writeIndex += n }
        return result
    }

    /// Waits with `poll` in short slices, so that a `close` from another thread is noticed.
    private func blockingWait(for interest: IOReactor.Interest, deadline: ContinuousClock.Instant?)
        throws(ChannelError)
    {
        while true {
            if isClosed { throw .closed }
            var sliceMS: Int32 = 100
            if let deadline {
                let remaining = deadline - .now
                if remaining <= .zero { throw .timedOut }
                let ms =
                    remaining.components.seconds * 1000 + remaining.components.attoseconds
                    / 1_000_000_000_000_000
                sliceMS = Int32(min(100, max(1, ms)))
            }
            do {
                let events = Int16(interest == .read ? POLLIN : POLLOUT)
                if try Syscall.poll(fd, events: events, milliseconds: sliceMS) > 0 { return }
            } catch {
                throw .system(error)
            }
        }
    }
}

/// A socket whose peer is closed: reads see EOF, writes fail. Swapped in by `close()`.
///
/// Made on first need and kept for the life of the process. Making it can fail (no descriptors
/// left); then it is simply tried again next time. No lock: a child made by `fork` must be able
/// to remake it whatever the parent's other threads were doing.
enum DeadSocket {
    private static let published = Atomic<Int32>(-1)

    /// The dead socket's descriptor, made now if it does not exist yet; `nil` if it cannot be.
    static func descriptor() -> Int32? {
        try? prepare()
    }

    /// The dead socket's descriptor, made now if it does not exist yet.
    @discardableResult
    static func prepare() throws(SystemError) -> Int32 {
        let existing = published.load(ordering: .acquiring)
        if existing >= 0 { return existing }
        let fds = try Syscall.socketPair()
        Syscall.close(fds.1)
        let (won, winner) = published.compareExchange(
            expected: -1, desired: fds.0, ordering: .acquiringAndReleasing)
        if won { return fds.0 }
        Syscall.close(fds.0)  // Another thread made one first.
        return winner
    }

    /// In the parent before a `.fork`: runs what ``recreateAfterFork()`` runs (see
    /// ``AfterFork``). The dead socket is made now if it was not yet, and replaced by another.
    static func prepareForFork() {
        guard descriptor() != nil else { return }
        recreateAfterFork()
    }

    /// In a forked child whose descriptors above stdio were closed: a new dead socket under the
    /// same number, or none (made again on first need).
    static func recreateAfterFork() {
        let fd = published.load(ordering: .acquiring)
        guard fd >= 0 else { return }
        guard let fds = try? Syscall.socketPair() else {
            published.store(-1, ordering: .releasing)
            return
        }
        defer {
            Syscall.close(fds.0)
            Syscall.close(fds.1)
        }
        if (try? Syscall.dup2(fds.0, fd)) == nil { published.store(-1, ordering: .releasing) }
    }
}
