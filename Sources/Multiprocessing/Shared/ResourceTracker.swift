import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Unlinks the named segments this process created with
/// ``SharedMemory/NameLifetime/untilReleased`` when it ends without releasing them, even by
/// `SIGKILL` (CPython's resource tracker, for shared memory).
///
/// The tracker is a small process started on the first such segment: a spawned copy of this
/// binary that forks once more and runs C code only (`mp_resource_tracker_serve`). It is
/// detached from its creator (re-parented, a session of its own), so neither the creator's
/// death, nor a signal to the creator's process group (`ChildProcess.kill()`, Ctrl-C), nor a
/// dying parent taking its descendants down reaches it; it ignores SIGINT, SIGTERM and SIGHUP.
/// This process registers each name after creating it and unregisters it after unlinking it,
/// over a socket only this process holds (close-on-exec, closed in `.fork` children). When
/// every copy of that socket is closed — this process has ended, however — the tracker unlinks
/// what is still registered and exits, so it never outlives its creator by more than that.
///
/// Names are only ever registered by their creator: a process that merely attached a segment,
/// or received it in a message, never has it unlinked for it (CPython's gh-82300).
final class ResourceTracker: Sendable {
    static let shared = ResourceTracker()

    private struct State {
        /// Our end of the tracker's socket, or -1 before the first registration.
        var fd: Int32 = -1
        /// The process that started the tracker: a forked copy of it must start its own.
        var owner: Int32 = 0
        /// Names registered and not yet unregistered, with how many times.
        var names: [String: Int] = [:]
        /// The tracker's pid, once it has said it.
        var trackerPID: Int32?
    }

    private let state = Mutex(State())

    /// Registers `name`, starting the tracker first if this process has none (or it died).
    func register(_ name: String) throws(SharedMemoryError) {
        try state.withLock { (s: inout State) throws(SharedMemoryError) in
            Self.adoptAfterFork(&s)
            if s.fd >= 0, Self.send("R", name, on: s.fd) {
                s.names[name, default: 0] += 1
                return
            }
            // No tracker yet, or it died: start one and tell it everything still registered.
            if s.fd >= 0 { Syscall.close(s.fd) }
            s.fd = -1
            s.trackerPID = nil
            let fd = try Self.start()
            for (registered, count) in s.names {
                for _ in 0..<count where !Self.send("R", registered, on: fd) {
                    Syscall.close(fd)
                    throw .resourceTrackerUnreachable
                }
            }
            guard Self.send("R", name, on: fd) else {
                Syscall.close(fd)
                throw .resourceTrackerUnreachable
            }
            s.fd = fd
            s.names[name, default: 0] += 1
        }
    }

    /// Unregisters `name` (after this process unlinked it itself). Does nothing for a name this
    /// process did not register.
    func unregister(_ name: String) {
        state.withLock { s in
            Self.adoptAfterFork(&s)
            guard let count = s.names[name] else { return }
            s.names[name] = count > 1 ? count - 1 : nil
            // A tracker that died has nothing of ours to unlink: the next registration restarts it.
            if s.fd >= 0 { _ = Self.send("U", name, on: s.fd) }
        }
    }

    /// The tracker's pid (waiting up to `timeout` for it to say it), or `nil` if none runs.
    func trackerProcess(timeout: Duration = .seconds(10)) -> Int32? {
        state.withLock { s in
            Self.adoptAfterFork(&s)
            if let pid = s.trackerPID { return pid }
            guard s.fd >= 0 else { return nil }
            let milliseconds = Int32(clamping: timeout.components.seconds * 1000)
            // A failed poll or recv reads as "no pid yet": the caller treats both alike.
            guard (try? Syscall.poll(s.fd, events: Int16(POLLIN), milliseconds: milliseconds)) ?? 0 > 0 else {
                return nil
            }
            var pid: Int32 = 0
            let n = withUnsafeMutableBytes(of: &pid) {
                try? Syscall.recv(s.fd, $0.baseAddress, $0.count, flags: Int32(MSG_DONTWAIT))
            }
            guard case .processed(MemoryLayout<Int32>.size) = n else { return nil }
            s.trackerPID = pid
            return pid
        }
    }

    /// In a forked copy of the process that started the tracker, the registrations are the
    /// original's and so is the socket (already closed by a `.fork` child): start afresh.
    private static func adoptAfterFork(_ s: inout State) {
        let me = mp_current_pid()  // Cached in C, refreshed in a forked child.
        guard s.owner != me else { return }
        s = State()
        s.owner = me
    }

    /// Spawns the tracker and returns our end of its socket.
    private static func start() throws(SharedMemoryError) -> Int32 {
        let fds: (Int32, Int32)
        do throws(SystemError) { fds = try Syscall.seqpacketPair() } catch { throw .system(error) }
        let environment = Launcher.environment(with: [ChildEntry.variable: "tracker:\(getpid())"])
        let launcher: Int32
        do throws(SystemError) {
            launcher = try Launcher.shared.spawnSelf(
                keep: [fds.1], stderr: -1, environment: environment, workingDirectory: nil)
        } catch {
            Syscall.close(fds.0)
            Syscall.close(fds.1)
            throw .system(error)
        }
        Syscall.close(fds.1)
        // The spawned copy forks the tracker and exits at once; reap it, so that the tracker is
        // detached before anything is registered. A copy that could not fork exits non-zero.
        var status: Int32 = 0
        let r = (try? Syscall.waitpid(launcher, &status, 0)) ?? -1  // ECHILD: reaped elsewhere.
        if r == launcher && status != 0 {
            Syscall.close(fds.0)
            throw .resourceTrackerNotStarted(ExitStatus(waitStatus: status))
        }
        return fds.0
    }

    /// Sends one message without ever raising SIGPIPE; waits at most a second for room.
    private static func send(_ operation: Character, _ name: String, on fd: Int32) -> Bool {
        let message = Array(String(operation).utf8) + Array(name.utf8)
        for _ in 0..<2 {
            let n = message.withUnsafeBytes {
                try? Syscall.send(fd, $0.baseAddress, $0.count, flags: Int32(MSG_DONTWAIT))
            }
            if case .processed(message.count) = n { return true }
            guard case .wouldBlock = n else { return false }
            _ = try? Syscall.poll(fd, events: Int16(POLLOUT), milliseconds: 1000)  // Then one more try.
        }
        return false
    }
}
