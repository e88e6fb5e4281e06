import CMultiprocessing
import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The library's system calls, in one place (swift-nio's `System.swift`, swift-system's
/// `valueOrErrno`): each wrapper returns the call's value or throws a ``SystemError`` with the
/// real `errno` and the call's name.
///
/// Interrupt policy (`EINTR`), here and nowhere else:
/// - Calls that are safe to repeat (read, write, send, recv, sendmsg, recvmsg, pread, pwrite,
///   waitpid, dup2, fcntl, ftruncate, open, shm_open, epoll_ctl) are retried.
/// - `close` is never retried: Linux releases the descriptor even when it reports `EINTR`, so a
///   retry could close a descriptor another thread has just been given.
/// - Waits with a timeout (`poll`, `epoll_wait`, futex waits, `nanosleep`) report `EINTR` as
///   "nothing yet" (0 ready, or woken): every caller loops and recomputes what is left of its
///   deadline, so a retry here would overshoot it.
///
/// Calls made in a forked child before it runs its task (`dup2`, `fcntl`) are
/// `@inline(__always)` and allocate nothing, even when they fail (their names are short enough
/// for a small string).
///
/// Non-blocking calls return ``IOResult``: `EAGAIN`/`EWOULDBLOCK` is an outcome, not an error.
/// The hot ones (read, write, send, sendmsg, recvmsg) are `@inline(__always)`: the wrapper
/// costs a compare on the success path.
enum Syscall {
    /// What a non-blocking call did.
    enum IOResult<Value> {
        /// The call went through with this value.
        case processed(Value)
        /// The call would have blocked (`EAGAIN`/`EWOULDBLOCK`).
        case wouldBlock
    }

    // MARK: The policy

    /// `call()` until it does not fail with `EINTR`; a result of -1 throws with the `errno`.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(
        _ operation: StaticString, _ call: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = call()
            if result != -1 { return result }
            let code = currentErrno()
            if code != EINTR { throw SystemError(operation.description, code: code) }
        }
    }

    /// ``retrying(_:_:)`` for a non-blocking call: `EAGAIN`/`EWOULDBLOCK` is `.wouldBlock`.
    @inline(__always)
    static func nonBlocking<T: FixedWidthInteger>(
        _ operation: StaticString, _ call: () -> T
    ) throws(SystemError) -> IOResult<T> {
        while true {
            let result = call()
            if result != -1 { return .processed(result) }
            let code = currentErrno()
            if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
            if code != EINTR { throw SystemError(operation.description, code: code) }
        }
    }

    // MARK: Descriptors

    /// `read`, retried on `EINTR`. 0 at end of file.
    @inline(__always)
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) throws(SystemError) -> Int
    {
        try retrying("read") { libcRead(fd, buffer, count) }
    }

    /// `read` on a non-blocking descriptor, retried on `EINTR`.
    @inline(__always)
    static func readNonBlocking(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int)
        throws(SystemError)
        -> IOResult<Int>
    {
        try nonBlocking("read") { libcRead(fd, buffer, count) }
    }

    /// `write`, retried on `EINTR`.
    @inline(__always)
    static func write(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) throws(SystemError) -> Int {
        try retrying("write") { libcWrite(fd, bytes, count) }
    }

    /// `pread`, retried on `EINTR`.
    static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, at offset: Int)
        throws(SystemError)
        -> Int
    {
        try retrying("pread") { libcPread(fd, buffer, count, off_t(offset)) }
    }

    /// `pwrite`, retried on `EINTR`.
    static func pwrite(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, at offset: Int)
        throws(SystemError)
        -> Int
    {
        try retrying("pwrite") { libcPwrite(fd, bytes, count, off_t(offset)) }
    }

    /// `close`, never retried (see the policy above); its error is discarded, because no caller
    /// can act on it: the descriptor is released whatever it reports.
    @inline(__always)
    static func close(_ fd: Int32) {
        _ = libcClose(fd)
    }

    /// `open` with close-on-exec, retried on `EINTR`.
    static func open(_ path: String, _ flags: Int32) throws(SystemError) -> Int32 {
        try retrying("open") { libcOpen(path, flags | O_CLOEXEC) }
    }

    /// `dup2`, retried on `EINTR`.
    @inline(__always) @discardableResult
    static func dup2(_ fd: Int32, _ target: Int32) throws(SystemError) -> Int32 {
        try retrying("dup2") { libcDup2(fd, target) }
    }

    /// Sets `O_NONBLOCK` on `fd`.
    static func setNonBlocking(_ fd: Int32) throws(SystemError) {
        let flags = try retrying("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        if flags & O_NONBLOCK != 0 { return }
        _ = try retrying("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }

    /// Sets `FD_CLOEXEC` on `fd`.
    @inline(__always)
    static func setCloseOnExec(_ fd: Int32) throws(SystemError) {
        _ = try retrying("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    /// The size of the file behind `fd` (`fstat`).
    static func fileSize(_ fd: Int32) throws(SystemError) -> Int {
        Int(try fileStatus(fd).st_size)
    }

    /// `fstat`.
    static func fileStatus(_ fd: Int32) throws(SystemError) -> stat {
        var info = stat()
        _ = try retrying("fstat") { fstat(fd, &info) }
        return info
    }

    /// `stat` of the file at `path`.
    static func fileStatus(_ path: String) throws(SystemError) -> stat {
        var info = stat()
        _ = try retrying("stat") { stat(path, &info) }
        return info
    }

    /// `ftruncate`, retried on `EINTR`.
    static func ftruncate(_ fd: Int32, _ size: Int) throws(SystemError) {
        _ = try retrying("ftruncate") { libcFtruncate(fd, off_t(size)) }
    }

    /// `poll` on one descriptor: how many are ready (0 after `timeout` or on `EINTR`).
    static func poll(_ fd: Int32, events: Int16, milliseconds: Int32) throws(SystemError) -> Int32 {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let ready = libcPoll(&entry, 1, milliseconds)
        if ready >= 0 { return ready }
        let code = currentErrno()
        if code == EINTR { return 0 }
        throw SystemError("poll", code: code)
    }

    /// Reads `fd` from its current position into `buffer` until it is full or the file ends;
    /// how many bytes it read.
    static func readAll(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        var length = 0
        while length < buffer.count {
            let n = try read(fd, buffer.baseAddress! + length, buffer.count - length)
            if n == 0 { break }
            length += n
        }
        return length
    }

    // MARK: Pairs

    /// A close-on-exec `socketpair(AF_UNIX, SOCK_STREAM)`.
    static func socketPair() throws(SystemError) -> (Int32, Int32) {
        try socketPair(streamType, "socketpair")
    }

    /// A close-on-exec `socketpair(AF_UNIX, SOCK_SEQPACKET)`: message boundaries kept.
    static func seqpacketPair() throws(SystemError) -> (Int32, Int32) {
        try socketPair(seqpacketType, "socketpair(SOCK_SEQPACKET)")
    }

    #if os(Linux)
        private static let streamType = Int32(SOCK_STREAM.rawValue)
        private static let seqpacketType = Int32(SOCK_SEQPACKET.rawValue)
    #else
        private static let streamType = SOCK_STREAM
        private static let seqpacketType = SOCK_SEQPACKET
    #endif

    private static func socketPair(_ type: Int32, _ operation: StaticString) throws(SystemError) -> (
        Int32, Int32
    ) {
        var fds: (Int32, Int32) = (-1, -1)
        #if os(Linux)
            let cloexec = Int32(SOCK_CLOEXEC.rawValue)
        #else
            let cloexec: Int32 = 0
        #endif
        _ = try withUnsafeMutableBytes(of: &fds) { raw throws(SystemError) in
            let p = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
            return try retrying(operation) { socketpair(AF_UNIX, type | cloexec, 0, p) }
        }
        #if !os(Linux)
            try? setCloseOnExec(fds.0)
            try? setCloseOnExec(fds.1)
        #endif
        return fds
    }

    /// A close-on-exec pipe: (read end, write end). In C: Swift's Glibc module has no `pipe2`.
    static func pipe() throws(SystemError) -> (Int32, Int32) {
        var fds: (Int32, Int32) = (-1, -1)
        let code = withUnsafeMutableBytes(of: &fds) {
            mp_pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self))
        }
        if code != 0 { throw SystemError("pipe2", code: code) }
        return fds
    }

    // MARK: Sockets

    /// `shutdown` of one direction (`SHUT_RD`, `SHUT_WR`) or both of a socket.
    static func shutdown(_ fd: Int32, _ how: Int32) throws(SystemError) {
        _ = try retrying("shutdown") { libcShutdown(fd, how) }
    }

    /// A non-blocking `send` (never raising SIGPIPE).
    @inline(__always)
    static func send(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, flags: Int32 = 0)
        throws(SystemError)
        -> IOResult<Int>
    {
        #if os(Linux)
            let flags = flags | Int32(MSG_NOSIGNAL)
        #endif
        return try nonBlocking("send") { libcSend(fd, bytes, count, flags) }
    }

    /// A non-blocking `recv`.
    @inline(__always)
    static func recv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, flags: Int32 = 0)
        throws(SystemError) -> IOResult<Int>
    {
        try nonBlocking("recv") { libcRecv(fd, buffer, count, flags) }
    }

    /// `sendmsg` with `descriptors` (SCM_RIGHTS, built in C: the CMSG macros).
    @inline(__always)
    static func sendWithDescriptors(
        _ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, _ descriptors: UnsafePointer<Int32>?,
        _ descriptorCount: Int32, flags: Int32 = 0
    ) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("sendmsg") { mp_sendmsg_fds(fd, bytes, count, descriptors, descriptorCount, flags) }
    }

    /// `recvmsg` that takes up to `capacity` descriptors (close-on-exec) into `descriptors`;
    /// `received` gets their count and `notes` the `MP_FDS_*` bits.
    @inline(__always)
    static func receiveWithDescriptors(
        _ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int,
        _ descriptors: UnsafeMutablePointer<Int32>?,
        _ capacity: Int32, _ received: inout Int32, _ notes: inout Int32, flags: Int32 = 0
    ) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("recvmsg") {
            mp_recvmsg_fds(fd, buffer, count, descriptors, capacity, &received, flags, &notes)
        }
    }

    // MARK: Processes

    /// `waitpid`, retried on `EINTR`: the pid reaped (0 with `WNOHANG` when none is ready).
    static func waitpid(_ pid: Int32, _ status: inout Int32, _ options: Int32) throws(SystemError) -> Int32 {
        try retrying("waitpid") { libcWaitpid(pid, &status, options) }
    }

    /// `kill`.
    static func kill(_ pid: Int32, _ signal: Int32) throws(SystemError) {
        _ = try retrying("kill") { libcKill(pid, signal) }
    }

    /// The process environment (`environ`).
    static var environment: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? {
        #if canImport(Darwin)
            _NSGetEnviron()?.pointee
        #else
            environ
        #endif
    }

    // MARK: Time

    /// `CLOCK_MONOTONIC` now, in nanoseconds (it cannot fail for that clock).
    @inline(__always)
    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        _ = clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) &* 1_000_000_000 &+ Int64(now.tv_nsec)
    }

    /// Sleeps for `nanoseconds` (less than a second), or less when a signal interrupts it: every
    /// caller re-checks what it waits for (the policy above).
    static func sleep(nanoseconds: Int) {
        var request = timespec(tv_sec: 0, tv_nsec: nanoseconds)
        // Its only failures: EINTR (see above) and EINVAL, which a request below a second
        // cannot cause.
        _ = nanosleep(&request, nil)
    }

    // MARK: Waiting on shared words (futexes)

    /// Sleeps while `*address == expected` (shared between processes), until woken or the
    /// `CLOCK_MONOTONIC` instant `deadline` (< 0: none). A wake-up, `EAGAIN` (the word
    /// changed) and `EINTR` are `.woken`: the caller looks again. Any other error is a wrong
    /// address, a bug.
    @inline(__always)
    static func futexWait(_ address: UnsafeMutablePointer<UInt32>, _ expected: UInt32, deadline: Int64)
        -> FutexWaitResult
    {
        let code = mp_futex_wait(address, expected, deadline)
        if code == 0 || code == EAGAIN || code == EINTR { return .woken }
        if code == ETIMEDOUT { return .timedOut }
        preconditionFailure("futex wait: errno \(code)")
    }

    /// Wakes up to `count` sleepers on `address`; how many woke. Its only failures (`EFAULT`,
    /// `EINVAL`) mean a wrong address: a bug, not a state.
    @inline(__always)
    static func futexWake(_ address: UnsafeMutablePointer<UInt32>, _ count: Int32) -> Int32 {
        let woken = mp_futex_wake(address, count)
        assert(woken >= 0, "futex wake: errno \(currentErrno())")
        return max(0, woken)
    }

    // MARK: epoll (Linux)

    #if os(Linux)
        /// A close-on-exec epoll instance (C: epoll's event struct is packed, out of Swift's reach).
        static func epollCreate() throws(SystemError) -> Int32 {
            try retrying("epoll_create1") { mp_epoll_create() }
        }

        /// `epoll_ctl` (`MP_EPOLL_CTL_*`, `MP_EPOLL*` events), retried on `EINTR`.
        static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, _ events: UInt32)
            throws(SystemError)
        {
            _ = try retrying("epoll_ctl") { mp_epoll_ctl(epoll, operation, fd, events) }
        }

        /// `epoll_wait` into parallel arrays of descriptors and events: how many are ready (0
        /// on `EINTR`, see the policy above).
        static func epollWait(
            _ epoll: Int32, _ fds: UnsafeMutablePointer<Int32>, _ events: UnsafeMutablePointer<UInt32>,
            _ capacity: Int32, milliseconds: Int32
        ) throws(SystemError) -> Int32 {
            let ready = mp_epoll_wait(epoll, fds, events, capacity, milliseconds)
            if ready >= 0 { return ready }
            let code = currentErrno()
            if code == EINTR { return 0 }
            throw SystemError("epoll_wait", code: code)
        }
    #endif

    // MARK: Memory

    /// Maps `size` bytes of `fd` shared, read-write.
    static func mapShared(_ fd: Int32, _ size: Int) throws(SystemError) -> UnsafeMutableRawPointer {
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else { throw SystemError("mmap") }
        return address
    }

    /// Maps `size` bytes of `fd` shared and read-only, faulting them all in at once where the
    /// system can (one fault instead of one per page).
    static func mapReadOnlyPopulated(_ fd: Int32, _ size: Int) throws(SystemError) -> UnsafeMutableRawPointer
    {
        #if os(Linux)
            let flags = MAP_SHARED | MAP_POPULATE
        #else
            let flags = MAP_SHARED
        #endif
        let address = mmap(nil, size, PROT_READ, flags, fd, 0)
        guard let address, address != MAP_FAILED else { throw SystemError("mmap") }
        return address
    }

    /// `munmap`. Its only failures (EINVAL) mean a wrong address or size: a bug, not a state.
    static func unmap(_ address: UnsafeMutableRawPointer, _ size: Int) {
        let rc = munmap(address, size)
        assert(rc == 0, "munmap: errno \(currentErrno())")
    }

    /// `shm_unlink`.
    static func shmUnlink(_ name: String) throws(SystemError) {
        _ = try retrying("shm_unlink") { shm_unlink(name) }
    }

    /// `shm_open` read-write, close-on-exec, mode 0600, retried on `EINTR`.
    static func shmOpen(_ name: String, _ flags: Int32) throws(SystemError) -> Int32 {
        let fd = try retrying("shm_open") { shm_open(name, O_RDWR | flags, 0o600) }
        #if !os(Linux)
            do throws(SystemError) { try setCloseOnExec(fd) } catch {
                close(fd)
                throw error
            }
        #endif
        return fd
    }

    /// An anonymous shared-memory file of `size` zeroed bytes (`memfd_create`, close-on-exec;
    /// in C: Swift's Glibc module does not declare it).
    static func memfdCreate(_ debugName: String, size: Int) throws(SystemError) -> Int32 {
        let fd = try retrying("memfd_create") { mp_memfd_create(debugName) }
        do throws(SystemError) { try ftruncate(fd, size) } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Gives the pages of `[address, address + length)` back to the system (`MADV_REMOVE`:
    /// shared memory reads as zeros afterwards). Where the system cannot, nothing happens.
    static func discardPages(_ address: UnsafeMutableRawPointer, _ length: Int) throws(SystemError) {
        #if canImport(Glibc)
            _ = try retrying("madvise") { madvise(address, length, MADV_REMOVE) }
        #endif
    }
}

// The C library's calls under names that `Syscall`'s own methods do not hide.
@inline(__always) private func libcRead(_ fd: Int32, _ p: UnsafeMutableRawPointer?, _ n: Int) -> Int {
    read(fd, p, n)
}
@inline(__always) private func libcWrite(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int) -> Int {
    write(fd, p, n)
}
@inline(__always) private func libcPread(_ fd: Int32, _ p: UnsafeMutableRawPointer?, _ n: Int, _ o: off_t)
    -> Int
{
    pread(fd, p, n, o)
}
@inline(__always) private func libcPwrite(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int, _ o: off_t) -> Int {
    pwrite(fd, p, n, o)
}
@inline(__always) private func libcClose(_ fd: Int32) -> Int32 { close(fd) }
@inline(__always) private func libcOpen(_ path: String, _ flags: Int32) -> Int32 { open(path, flags) }
@inline(__always) private func libcDup2(_ fd: Int32, _ target: Int32) -> Int32 { dup2(fd, target) }
@inline(__always) private func libcFtruncate(_ fd: Int32, _ size: off_t) -> Int32 { ftruncate(fd, size) }
@inline(__always) private func libcPoll(_ fds: UnsafeMutablePointer<pollfd>, _ n: nfds_t, _ ms: Int32)
    -> Int32
{
    poll(fds, n, ms)
}
@inline(__always) private func libcSend(_ fd: Int32, _ p: UnsafeRawPointer?, _ n: Int, _ flags: Int32) -> Int
{
    send(fd, p, n, flags)
}
@inline(__always) private func libcRecv(_ fd: Int32, _ p: UnsafeMutableRawPointer?, _ n: Int, _ flags: Int32)
    -> Int
{
    recv(fd, p, n, flags)
}
@inline(__always) private func libcWaitpid(
    _ pid: Int32, _ status: UnsafeMutablePointer<Int32>, _ options: Int32
) -> Int32 {
    waitpid(pid, status, options)
}
@inline(__always) private func libcShutdown(_ fd: Int32, _ how: Int32) -> Int32 { shutdown(fd, how) }
@inline(__always) private func libcKill(_ pid: Int32, _ signal: Int32) -> Int32 { kill(pid, signal) }
