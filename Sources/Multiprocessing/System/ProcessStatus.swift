#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the kernel says about another process: whether it has ended, and when it started (so
/// that a new process that got an old one's pid is not taken for it).
enum ProcessStatus {
    /// Whether `pid` has ended: gone, or a zombie waiting to be reaped (it holds nothing any
    /// more). With a `start` time (not 0), also when another process now has that pid.
    static func hasEnded(_ pid: Int32, startedAt start: UInt64 = 0) -> Bool {
        guard pid > 0 else { return false }
        do throws(SystemError) {
            try Syscall.kill(pid, 0)
        } catch {
            // EPERM: it exists, and is not ours to signal.
            if error.errno == .noSuchProcess { return true }
        }
        // Unreadable (it ended just now, or this system hides it): alive until `kill` says not.
        guard let status = read(pid) else { return false }
        if status.zombie { return true }
        return start != 0 && status.start != 0 && status.start != start
    }

    /// A process's start time in the kernel's units (clock ticks since boot on Linux,
    /// microseconds since the epoch on Darwin), or `nil` when it cannot be read.
    static func startTime(of pid: Int32) -> UInt64? {
        read(pid)?.start
    }

    #if os(Linux)
        /// `/proc/<pid>/stat`: the state (field 3) and the start time (field 22), read after the
        /// last `)` because the command name may hold spaces and parentheses.
        private static func read(_ pid: Int32) -> (zombie: Bool, start: UInt64)? {
            guard let fd = try? Syscall.open("/proc/\(pid)/stat", O_RDONLY) else { return nil }
            defer { Syscall.close(fd) }
            return withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 1) { buffer in
                guard let length = try? Syscall.readAll(fd, into: buffer) else { return nil }
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
        private static func read(_ pid: Int32) -> (zombie: Bool, start: UInt64)? {
            var info = kinfo_proc()
            var size = MemoryLayout<kinfo_proc>.stride
            var name: [Int32] = [CTL_KERN, KERN_PROC, KERN_PROC_PID, pid]
            guard sysctl(&name, 4, &info, &size, nil, 0) == 0, size > 0 else { return nil }
            let started = info.kp_proc.p_un.__p_starttime
            let start = UInt64(max(0, started.tv_sec)) * 1_000_000 + UInt64(max(0, started.tv_usec))
            return (Int32(info.kp_proc.p_stat) == SZOMB, start)
        }
    #else
        private static func read(_ pid: Int32) -> (zombie: Bool, start: UInt64)? { nil }
    #endif
}
