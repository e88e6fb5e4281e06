import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who holds items taken from a ``JoinableQueue``: a process, named by its pid and its start time,
/// so that a new process that happens to get a dead holder's pid is never taken for it.
///
/// The identity is the process, not a thread or a task: every thread and task of a process
/// shares its held items, and they die together.
struct ConsumerIdentity: Equatable, Sendable {
    /// 0 for none.
    var pid: Int32
    /// The process's start time in the kernel's units (clock ticks since boot on Linux,
    /// microseconds since the epoch on Darwin), or 0 where it cannot be read.
    var start: UInt64

    /// This process (refreshed in a child made by `fork`).
    static var current: ConsumerIdentity {
        let pid = mp_current_pid()
        if cachedPid.load(ordering: .acquiring) == pid {
            return ConsumerIdentity(pid: pid, start: cachedStart.load(ordering: .relaxed))
        }
        let start = startTime(of: pid) ?? 0
        cachedStart.store(start, ordering: .relaxed)
        cachedPid.store(pid, ordering: .releasing)
        return ConsumerIdentity(pid: pid, start: start)
    }

    private static let cachedPid = Atomic<Int32>(0)
    private static let cachedStart = Atomic<UInt64>(0)

    /// Whether this process has ended: gone, a zombie waiting to be reaped, or replaced by
    /// another process under the same pid.
    var isGone: Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        // Unreadable (it ended just now, or this system hides it): alive until `kill` says not.
        guard let status = Self.status(of: pid) else { return false }
        if status.zombie { return true }
        return start != 0 && status.start != 0 && status.start != start
    }

    /// A process's start time, or `nil` when it cannot be read.
    static func startTime(of pid: Int32) -> UInt64? {
        status(of: pid)?.start
    }

    #if os(Linux)
        /// `/proc/<pid>/stat`: the state (field 3) and the start time (field 22), read after the
        /// last `)` because the command name may hold spaces and parentheses.
        private static func status(of pid: Int32) -> (zombie: Bool, start: UInt64)? {
            let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            defer { close(fd) }
            return withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { buffer in
                var length = 0
                while length < buffer.count {
                    let n = read(fd, buffer.baseAddress! + length, buffer.count - length)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { break }
                    length += n
                }
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<length])
                guard let paren = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
                var field = 2  // The field ")" ends.
                var state: UInt8 = 0
                var start: UInt64 = 0
                var index = paren + 1
                while index < bytes.count {
                    let byte = bytes[index]
                    index += 1
                    if byte == UInt8(ascii: " ") {
                        field += 1
                        if field > 22 { break }
                        continue
                    }
                    if field == 3 && state == 0 { state = byte }
                    if field == 22 {
                        guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                        start = start &* 10 &+ UInt64(byte - UInt8(ascii: "0"))
                    }
                }
                guard field >= 22 else { return nil }
                return (state == UInt8(ascii: "Z") || state == UInt8(ascii: "X"), start)
            }
        }
    #elseif canImport(Darwin)
        /// `sysctl(KERN_PROC_PID)`: the state and the start time.
        private static func status(of pid: Int32) -> (zombie: Bool, start: UInt64)? {
            var info = kinfo_proc()
            var size = MemoryLayout<kinfo_proc>.stride
            var name: [Int32] = [CTL_KERN, KERN_PROC, KERN_PROC_PID, pid]
            guard sysctl(&name, 4, &info, &size, nil, 0) == 0, size > 0 else { return nil }
            let started = info.kp_proc.p_un.__p_starttime
            let start = UInt64(max(0, started.tv_sec)) * 1_000_000 + UInt64(max(0, started.tv_usec))
            return (Int32(info.kp_proc.p_stat) == SZOMB, start)
        }
    #else
        private static func status(of pid: Int32) -> (zombie: Bool, start: UInt64)? { nil }
    #endif
}
