import CMultiprocessing
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("ProcessChannel")
struct ChannelTests {
    @Test("typed messages and raw bytes in one process")
    func localRoundTrip() async throws {
        let (a, b) = try ProcessChannel<EchoMessage>.pair()
        try await a.send(.text("héllo"))
        try await a.send(.numbers([1.5, -2, .infinity]))
        try await a.sendBytes([1, 2, 3])
        #expect(try await b.receive() == .text("héllo"))
        #expect(try await b.receive() == .numbers([1.5, -2, .infinity]))
        #expect(try await b.receiveBytes() == [1, 2, 3])
        #expect(try b.poll() == false)
        try b.sendBlocking(.stop)
        #expect(try a.poll(timeout: .seconds(1)))
        #expect(try a.receiveBlocking() == .stop)
    }

    @Test("poll(timeout: .zero) never waits, not even while a messages loop waits on the same end")
    func zeroPollNeverWaits() async throws {
        let pairs = try (0..<4).map { _ in try ProcessChannel<Int>.pair() }
        let heartbeat = Heartbeat()
        let beat = heartbeat.start()
        let receivers = Task {
            await withTaskGroup(of: Void.self) { group in
                for (_, b) in pairs {
                    group.addTask { do { for try await _ in b.messages {} } catch {} }
                }
            }
        }
        #expect(await heartbeat.ticked(20))  // Every loop is waiting by now.
        // Were a poll to wait for a loop, only a message would free it.
        let watchdog = Watchdog { for (a, _) in pairs { try? a.sendBlocking(0) } }
        var ready = 0
        for _ in 0..<10 {
            for (_, b) in pairs where try b.poll(timeout: .zero) { ready += 1 }
        }
        #expect(!watchdog.cancel(), "a zero poll waited for the receiving loop")
        #expect(ready == 0)
        #expect(await heartbeat.ticked(20))
        for (a, _) in pairs { a.close() }
        await receivers.value
        heartbeat.stop()
        await beat.value
    }

    @Test("a typed receive refuses raw bytes with a typed error")
    func kindMismatch() async throws {
        let (a, b) = try ProcessChannel<Int>.pair()
        try await a.sendBytes([9, 9])
        await #expect(
            throws: ChannelError.unexpectedFrameKind(expected: "a typed message", received: "raw bytes")
        ) {
            try await b.receive()
        }
    }

    @Test(
        "echo through a child process, then the child's result", arguments: [StartMethod.spawn, .forkserver])
    func echoChild(method: StartMethod) async throws {
        let (mine, theirs) = try ProcessChannel<EchoMessage>.pair()
        let child = try ChildProcess(Echoer(channel: theirs), startMethod: method)
        try await child.start()
        #expect(theirs.isClosed, "an end stored in a task moves to the child")
        let big = (0..<100_000).map(Double.init)
        for message in [EchoMessage.text("one"), .numbers(big), .text("three")] {
            try await mine.send(message)
            #expect(try await mine.receive(timeout: .seconds(20)) == message)
        }
        try await mine.send(.stop)
        #expect(try await child.value == 3)
    }

    @Test("receive with a timeout")
    func receiveTimeout() async throws {
        let (a, b) = try ProcessChannel<Int>.pair()
        defer { b.close() }
        let start = ContinuousClock.now
        await #expect(throws: ChannelError.timedOut) { try await a.receive(timeout: .milliseconds(100)) }
        #expect(throws: ChannelError.timedOut) { try a.receiveBlocking(timeout: .milliseconds(50)) }
        // Ended by the time-outs, not by a hang (loose: the whole suite shares 2 cores).
        #expect(ContinuousClock.now - start < .seconds(60))
    }

    @Test("a timed or cancelled receive queued behind an untimed one ends on its own")
    func queuedReceivers() async throws {
        let (a, b) = try ProcessChannel<Int>.pair()
        defer { b.close() }
        let first = Task { try await a.receive() }  // Holds the end's receive side while it waits.
        try await Task.sleep(for: .milliseconds(30))
        await #expect(throws: ChannelError.timedOut) { try await a.receive(timeout: .milliseconds(50)) }
        try await onThread {
            #expect(throws: ChannelError.timedOut) { try a.receiveBlocking(timeout: .milliseconds(50)) }
        }
        await #expect(throws: ChannelError.timedOut) { try await a.receive(timeout: .zero) }
        let queued = Task { try await a.receive() }
        try await Task.sleep(for: .milliseconds(30))
        queued.cancel()
        await #expect(throws: ChannelError.cancelled) { try await queued.value }
        try await b.send(7)
        #expect(try await first.value == 7)
        try await b.send(8)
        #expect(try await a.receive(timeout: .seconds(5)) == 8)
    }

    @Test("a dead peer gives peerClosed, never a hang")
    func deadPeer() async throws {
        let (mine, theirs) = try ProcessChannel<Int>.pair()
        let child = try ChildProcess(QuickExit(channel: theirs))
        try await child.start()
        #expect(try await child.join() == .exited(0))
        await #expect(throws: ChannelError.peerClosed) { try await mine.receive(timeout: .seconds(10)) }
        await #expect(throws: ChannelError.peerClosed) {
            for i in 0..<1000 { try await mine.send(i) }
        }
    }

    @Test("a closed end gives closed; closing wakes a waiting receiver")
    func closedEnd() async throws {
        let (a, b) = try ProcessChannel<Int>.pair()
        let waiter = Task { try await b.receive() }
        try await Task.sleep(for: .milliseconds(50))
        b.close()
        await #expect(throws: ChannelError.closed) { try await waiter.value }
        await #expect(throws: ChannelError.closed) { try await b.send(1) }
        await #expect(throws: ChannelError.peerClosed) { try await a.receive(timeout: .seconds(5)) }
    }

    @Test("one-way channel carries 1 MiB byte frames from a child")
    func largeFrames() async throws {
        let (receiver, sender) = try ProcessChannel<Int>.oneWay()
        let child = try ChildProcess(ByteSender(sender: sender, count: 8, size: 1 << 20))
        try await child.start()
        var total = 0
        for _ in 0..<8 {
            let bytes = try await receiver.receiveBytes(timeout: .seconds(20))
            #expect(bytes.count == 1 << 20)
            #expect(bytes.first == 7 && bytes.last == 7)
            total += bytes.count
        }
        #expect(total == 8 << 20)
        await #expect(throws: ChannelError.peerClosed) {
            try await receiver.receiveBytes(timeout: .seconds(10))
        }
        try await child.value
    }

    @Test("the messages sequence ends at end-of-file")
    func messagesSequence() async throws {
        let (receiver, sender) = try ProcessChannel<Int>.oneWay()
        for i in 0..<5 { try await sender.send(i) }
        sender.close()
        var seen: [Int] = []
        for try await value in receiver.messages { seen.append(value) }
        #expect(seen == [0, 1, 2, 3, 4])
    }

    @Test("a channel end cannot be encoded outside a transfer")
    func notTransferable() throws {
        let (a, _) = try ProcessChannel<Int>.pair()
        #expect(throws: CodecError.self) { _ = try BinaryEncoder().encode(a) }
    }
}

@Suite("Frames on the wire")
struct FrameTests {
    /// A raw socket pair: garbage goes in one end, a FramedSocket reads the other.
    func rawPair(maximumFrameSize: Int = 1 << 30) throws -> (Int32, FramedSocket) {
        let fds = try Syscall.socketPair()
        return (fds.0, FramedSocket(fd: fds.1, maximumFrameSize: maximumFrameSize))
    }

    func write(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    @Test("garbage bytes give corruptFrame")
    func garbage() async throws {
        let (raw, socket) = try rawPair()
        defer { close(raw) }
        write(raw, Array("GET / HTTP/1.1\r\n".utf8))
        await #expect {
            _ = try await socket.receive(timeout: .seconds(5))
        } throws: { error in
            if case ChannelError.corruptFrame = error { return true }
            return false
        }
    }

    @Test("an unknown frame kind gives corruptFrame")
    func unknownKind() throws {
        let (raw, socket) = try rawPair()
        defer { close(raw) }
        write(raw, [0xB5, 99, 0, 0, 1, 0, 0, 0, 0])
        #expect {
            _ = try socket.receiveBlocking(timeout: .seconds(5))
        } throws: { error in
            if case ChannelError.corruptFrame = error { return true }
            return false
        }
    }

    @Test("a frame truncated by the peer's exit gives corruptFrame, at every cut")
    func truncated() throws {
        var encoded: [UInt8] = []
        let payload = try BinaryEncoder().encode(EchoMessage.text(String(repeating: "x", count: 100)))
        encoded =
            [0xB5, 0, 0, 0] + withUnsafeBytes(of: UInt32(payload.count).littleEndian, Array.init) + payload
        for cut in 1..<encoded.count {
            let (raw, socket) = try rawPair()
            write(raw, Array(encoded[0..<cut]))
            close(raw)
            #expect {
                _ = try socket.receiveBlocking(timeout: .seconds(5))
            } throws: { error in
                if case ChannelError.corruptFrame = error { return true }
                return false
            }
        }
    }

    @Test("a peer that dies inside a large frame gives corruptFrame, not a spin or a time-out")
    func peerDiesInLargeFrame() async throws {
        let (raw, socket) = try rawPair()
        write(raw, [0xB5, 1, 0, 0] + withUnsafeBytes(of: UInt32(100_000).littleEndian, Array.init))
        write(raw, [UInt8](repeating: 1, count: 1000))
        close(raw)
        await #expect {
            _ = try await socket.receive(timeout: .seconds(5))
        } throws: { error in
            if case ChannelError.corruptFrame = error { return true }
            return false
        }
    }

    @Test("a large frame announced but not sent costs no more than its first storage")
    func announcedButNotSent() async throws {
        let (raw, socket) = try rawPair()
        defer { close(raw) }
        write(raw, [0xB5, 1, 0, 0] + withUnsafeBytes(of: UInt32(900 << 20).littleEndian, Array.init))
        await #expect(throws: ChannelError.timedOut) {
            _ = try await socket.receive(timeout: .milliseconds(200))
        }
        // Then a frame of 9 MiB does arrive whole: the storage grows as bytes come.
        let (raw2, socket2) = try rawPair()
        let payload = [UInt8](repeating: 3, count: 9 << 20)
        // Blocking writes on a Dispatch thread: on a cooperative one they pinned it, and with
        // another test doing the same the receiver here had no thread left to run on (a hang).
        let sender = Task {
            try? await onThread {
                let header: [UInt8] =
                    [0xB5, 1, 0, 0] + withUnsafeBytes(of: UInt32(payload.count).littleEndian, Array.init)
                var all = header + payload
                var offset = 0
                while offset < all.count {
                    // MSG_NOSIGNAL: should the receiver give up and close its end, this fails
                    // with EPIPE instead of killing the test process with SIGPIPE.
                    let n = all.withUnsafeMutableBytes {
                        Glibc.send(raw2, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
                    }
                    if n <= 0 { break }
                    offset += n
                }
                close(raw2)
            }
        }
        let frame = try await socket2.receive(timeout: .seconds(20))
        #expect(frame.payload.count == 9 << 20)
        #expect(frame.payload.allSatisfy { $0 == 3 })
        await sender.value
    }

    @Test("a huge length prefix is refused before allocating")
    func hugeLength() throws {
        let (raw, socket) = try rawPair(maximumFrameSize: 1 << 20)
        defer { close(raw) }
        write(raw, [0xB5, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: ChannelError.frameTooLarge(length: Int(UInt32.max), limit: 1 << 20)) {
            _ = try socket.receiveBlocking(timeout: .seconds(5))
        }
    }

    @Test("a valid frame whose payload is garbage gives a codec error")
    func garbagePayload() async throws {
        let (raw, socket) = try rawPair()
        defer { close(raw) }
        write(raw, [0xB5, 0, 0, 0, 3, 0, 0, 0, 0xFF, 0xFF, 0xFF])
        let channel = ProcessChannel<EchoMessage>(socket: socket)
        await #expect {
            _ = try await channel.receive(timeout: .seconds(5))
        } throws: { error in
            if case ChannelError.codec = error { return true }
            return false
        }
    }
}
