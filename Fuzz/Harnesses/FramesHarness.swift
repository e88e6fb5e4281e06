import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Harness `frames`: a hostile peer on the other end of a `FramedSocket`.
///
/// The input is a mode byte, then chunks `[control][length][bytes]`: each chunk is one
/// `sendmsg` of its bytes carrying `control & 0x7F` descriptors (so up to 127, past the 64 a
/// frame may carry). The receiver takes frames until the stream ends or fails; message frames
/// are decoded as a message that owns descriptors. Mode bits: 1 = ask `poll` before each
/// receive, 2 = use `drainAvailable`, 4 = a 1 KiB frame size limit, 8 = also drain after each
/// chunk, while the peer is still open.
///
/// Oracles: no crash or hang, the receive ends with a frame, `peerClosed` or a typed error,
/// and once everything is closed this process holds exactly the descriptors it held before.
enum FramesHarness {
    /// What the peer floods descriptors with.
    static let marker: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)

    /// Opens what lives for the whole process (the marker, the I/O reactor's descriptors)
    /// before descriptors are counted.
    static func prepare() {
        precondition(marker >= 0)
        _ = try? IOReactor.running()
        guard let pair = try? Syscall.socketPair() else { fatalError("socketpair failed") }
        let fds = [pair.0, pair.1]
        close(fds[0])
        _ = FramedSocket(fd: fds[1])
        _ = DeadSocket.descriptor()
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        guard let mode = data.first else { return }
        let before = openDescriptorCount()
        guard let pair = try? Syscall.socketPair() else { fatalError("socketpair failed") }
        let fds = [pair.0, pair.1]
        let peer = fds[0]
        let limit = mode & 4 != 0 ? 1024 : 1 << 30
        var early = mode & 8 != 0 ? FramedSocket(fd: fds[1], maximumFrameSize: limit) : nil
        var offset = 1
        var chunks = 0
        while offset + 2 <= data.count && chunks < 64 {
            let control = Int(data[offset])
            let length = min(Int(data[offset + 1]), data.count - offset - 2)
            let bytes = UnsafeRawBufferPointer(rebasing: data[(offset + 2)..<(offset + 2 + length)])
            offset += 2 + length
            chunks += 1
            let copies = [Int32](repeating: marker, count: control & 0x7F)
            let sent = copies.withUnsafeBufferPointer {
                mp_sendmsg_fds(
                    peer, bytes.baseAddress, bytes.count, $0.baseAddress, Int32($0.count), Int32(MSG_DONTWAIT)
                )
            }
            if sent < 0 { break }  // The socket is full, or too many descriptors are in flight.
            if let socket = early {
                // Read what is there while the peer is still open: frames arrive in pieces.
                for frame in socket.drainAvailable().frames { consume(frame) }
            }
        }
        close(peer)
        do {
            let socket = early ?? FramedSocket(fd: fds[1], maximumFrameSize: limit)
            early = nil
            if mode & 2 != 0 {
                for frame in socket.drainAvailable().frames { consume(frame) }
            } else {
                receiveAll(socket, polling: mode & 1 != 0)
            }
        }
        let after = openDescriptorCount()
        if after != before { fatalError("descriptors leaked: \(before) open before, \(after) after") }
    }

    static func receiveAll(_ socket: FramedSocket, polling: Bool) {
        for _ in 0..<10_000 {
            do {
                if polling {
                    guard try socket.poll(timeout: .seconds(5)) else {
                        fatalError("poll timed out on a closed peer")
                    }
                }
                consume(try socket.receiveBlocking(timeout: .seconds(5)))
            } catch .timedOut {
                fatalError("receive timed out although the peer is closed")
            } catch {
                // The error must stick: a broken stream never yields a frame again.
                if case .peerClosed = error { return }
                do {
                    let frame = try socket.receiveBlocking(timeout: .seconds(5))
                    fatalError("a frame (\(frame.kind)) after \(error)")
                } catch let again {
                    if again != error { fatalError("\(error) then \(again)") }
                }
                return
            }
        }
        fatalError("more frames than bytes")
    }

    /// Decodes a message frame the way a channel does, then closes everything it owns.
    static func consume(_ frame: Frame) {
        let incoming = DescriptorTransfer.Incoming(frame.descriptors)
        defer { incoming.closeUnclaimed() }
        guard frame.kind == .message else { return }
        var decoder = BinaryDecoder()
        decoder.userInfo[DescriptorTransfer.key] = incoming
        if let message = try? decoder.decode(WithDescriptors.self, from: frame.payload) {
            for fd in message.passed.take() { close(fd) }
            for passed in message.more { for fd in passed.take() { close(fd) } }
        }
    }

    static func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count
    }

    /// A chunk: `count` descriptors with `bytes`.
    static func chunk(_ bytes: [UInt8], descriptors count: Int = 0) -> [UInt8] {
        precondition(bytes.count < 256)
        return [UInt8(count), UInt8(bytes.count)] + bytes
    }

    static func header(_ kind: UInt8, descriptors: UInt16, length: UInt32) -> [UInt8] {
        [0xB5, kind] + withUnsafeBytes(of: descriptors.littleEndian, Array.init)
            + withUnsafeBytes(of: length.littleEndian, Array.init)
    }

    static func seeds() -> [[UInt8]] {
        let outgoing = DescriptorTransfer.Outgoing()
        var encoder = BinaryEncoder()
        encoder.userInfo[DescriptorTransfer.key] = outgoing
        let message = try! encoder.encode(
            WithDescriptors(
                label: "two", passed: PassedDescriptors([marker, marker]), more: [PassedDescriptors([marker])]
            ))
        let plain = try! BinaryEncoder().encode(
            WithDescriptors(label: "none", passed: PassedDescriptors([]), more: []))
        let bytesFrame = header(1, descriptors: 0, length: 5) + [1, 2, 3, 4, 5]
        return [
            [0] + chunk(header(0, descriptors: 3, length: UInt32(message.count)) + message, descriptors: 3),
            [1] + chunk(header(0, descriptors: 0, length: UInt32(plain.count)) + plain),
            [2] + chunk(bytesFrame) + chunk(bytesFrame),
            [0] + chunk(Array(bytesFrame[0..<3])) + chunk(Array(bytesFrame[3...])),
            [0] + chunk(header(1, descriptors: 1, length: 3) + [9], descriptors: 1) + chunk([8, 7]),
            // Descriptors that no frame announces, and a frame whose header announces more.
            [0] + chunk(bytesFrame, descriptors: 2),
            [0] + chunk(header(1, descriptors: 64, length: 40), descriptors: 64)
                + chunk([0], descriptors: 64),
            [1] + chunk(header(1, descriptors: 2, length: 1) + [0], descriptors: 70),
            // A large frame (read into its own storage) with descriptors inside its payload.
            [0] + chunk(header(1, descriptors: 0, length: 100_000) + [1, 2]) + chunk([3, 4], descriptors: 1),
            [4] + chunk(header(1, descriptors: 0, length: 2048) + [1]),
            [0] + chunk(header(7, descriptors: 0, length: 0)),
            [8] + chunk(Array(bytesFrame[0..<6]), descriptors: 1)
                + chunk(Array(bytesFrame[6...]) + bytesFrame),
            [0] + chunk([0x47, 0x45, 0x54, 0x20, 0x2F]),
        ]
    }
}
