import CMultiprocessing
import Synchronization

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
    var isGone: Bool { ProcessStatus.hasEnded(pid, startedAt: start) }

    /// A process's start time, or `nil` when it cannot be read.
    static func startTime(of pid: Int32) -> UInt64? { ProcessStatus.startTime(of: pid) }
}
