import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// File-system views built once and entered by every later sandbox that asks for the same one.
///
/// A template is a mount namespace holding a view's fixed part — the read-only root, the clones
/// of the listed paths and of the running files, `/dev` — kept by this process as a descriptor.
/// A privileged sandbox's init enters it (`setns`), copies it (`unshare(CLONE_NEWNS)`: a
/// namespace of its own, as before) and mounts what is its own: a fresh `/tmp`, `/dev/shm` and
/// `/proc` (``SandboxMounts/enterCopy(of:_:ownsProcFS:keeping:)``). Building a view costs a fresh child
/// some 75 mount calls, and detaching this machine's tree an RCU grace period; entering one, a
/// copy and three mounts. The first sandbox of a kind builds the template on its way (its init
/// sends it back on the link, ``SandboxLink``).
///
/// A template is the view as it was built: its clones keep the files and directories they were
/// made of. Each start compares the identities (device and inode, or absence) of the paths it
/// would clone with those the template was built from, and builds afresh where one changed (a
/// file replaced by a rename, a directory made again); changes inside a listed directory show as
/// always. Only privileged sandboxes use templates (entering a namespace of this machine's user
/// namespace takes `CAP_SYS_ADMIN` there), and only views with nothing listed under what each
/// sandbox mounts for itself (`/tmp` when it is private, `/dev`, `/proc`). Templates hold no
/// process; they go with this process.
enum SandboxViewTemplates {
    /// What makes two views the same.
    struct Key: Hashable, Sendable {
        var readablePaths: [String]
        var writablePaths: [String]
        var sharesNamedSharedMemory: Bool
        var ownsProcFS: Bool
        var privateTemporaryDirectory: Bool
    }

    /// A path's identity when a template is made or used: device and inode, or nothing.
    struct Stamp: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    /// One kept template.
    private final class Entry: Sendable {
        let fd: Int32
        let visible: [SandboxMounts.Visible]
        let stamps: [Stamp]
        init(fd: Int32, visible: [SandboxMounts.Visible], stamps: [Stamp]) {
            self.fd = fd
            self.visible = visible
            self.stamps = stamps
        }
        deinit { close(fd) }
    }

    /// At most this many kinds of view are kept (a program uses a few).
    private static let capacity = 8

    private final class Store: Sendable {
        let entries = Mutex<[Key: Entry]>([:])
    }
    private static let initialStore = Store()
    /// Written only in a freshly forked child, while it has a single thread.
    nonisolated(unsafe) private static var afterForkStore: Store?
    private static var store: Store { afterForkStore ?? initialStore }

    /// Made in the parent before a `.fork` (``prepareForFork()``), never used there: the store
    /// its first forked child takes, without allocating or making type metadata in the child.
    private static let spareStore = Store()

    /// In the parent, before a `.fork`.
    static func prepareForFork() { _ = spareStore }

    /// In a child made by `fork`: the parent's descriptors above stdio are closed, and another
    /// thread may have held the lock. A fresh store; the old entries are never touched again
    /// (closing their numbers now could close something else).
    static func forgetAfterFork() { afterForkStore = afterForkStore == nil ? spareStore : Store() }

    /// What one start does about a template: enter `fd` (a descriptor of its own, sent with the
    /// launch and closed with the ticket), or build one for `key`, or neither.
    final class Ticket: Sendable {
        let key: Key
        let stamps: [Stamp]
        let fd: Int32
        let visible: [SandboxMounts.Visible]

        fileprivate init(key: Key, stamps: [Stamp], fd: Int32, visible: [SandboxMounts.Visible]) {
            self.key = key
            self.stamps = stamps
            self.fd = fd
            self.visible = visible
        }
        deinit { if fd >= 0 { close(fd) } }

        /// The plan's part: enter the template sent along, or build one.
        var view: SandboxPlan.View { fd >= 0 ? .enter(visible) : .build }
    }

    /// The ticket of a start in `sandbox` from a binary running from `runningFiles`; `nil` where
    /// templates do not apply.
    static func ticket(for sandbox: Sandbox, runningFiles: [String]) -> Ticket? {
        #if os(Linux)
            guard sandbox.isolatesFileSystem, SandboxCredentials.isPrivileged else { return nil }
            let privateTmp = sandbox.temporaryDirectorySize != nil
            let listed = sandbox.readablePaths + sandbox.writablePaths + runningFiles
            for path in listed {
                // What each sandbox mounts for itself would cover what the template holds there
                // (but the program's own files below a private /tmp, which each sandbox attaches
                // again through it: ``SandboxMounts/enterCopy(of:_:ownsProcFS:keeping:)``).
                let ownFile = privateTmp && runningFiles.contains(path) && path.hasPrefix("/tmp/")
                if path == "/" || path == "/dev" || path.hasPrefix("/dev/") || path == "/proc"
                    || path.hasPrefix("/proc/") || path == "/tmp"
                    || (privateTmp && path.hasPrefix("/tmp/") && !ownFile)
                {
                    return nil
                }
            }
            let key = Key(
                readablePaths: sandbox.readablePaths, writablePaths: sandbox.writablePaths,
                sharesNamedSharedMemory: sandbox.sharesNamedSharedMemory,
                ownsProcFS: sandbox.isolatesProcesses,
                privateTemporaryDirectory: privateTmp)
            let stamps = listed.map(stamp)
            let (fd, visible): (Int32, [SandboxMounts.Visible]) = store.entries.withLock { entries in
                guard let entry = entries[key] else { return (-1, []) }
                guard entry.stamps == stamps else {
                    entries[key] = nil  // Something it cloned changed: built again by this start.
                    return (-1, [])
                }
                return (fcntl(entry.fd, F_DUPFD_CLOEXEC, 3), entry.visible)
            }
            return Ticket(key: key, stamps: stamps, fd: fd, visible: visible)
        #else
            return nil
        #endif
    }

    /// Keeps `fd`, the template a child built for `ticket`'s view (or closes it where one is
    /// kept already or there is no room).
    static func keep(_ fd: Int32, visible: [SandboxMounts.Visible], for ticket: Ticket) {
        let kept = store.entries.withLock { entries in
            guard entries[ticket.key] == nil, entries.count < capacity else { return false }
            entries[ticket.key] = Entry(fd: fd, visible: visible, stamps: ticket.stamps)
            return true
        }
        if !kept { close(fd) }
    }

    /// Whether a template is kept for `sandbox`'s view, as it stands (for tests).
    static func isKept(for sandbox: Sandbox) -> Bool {
        ticket(for: sandbox, runningFiles: SandboxHostFacts.runningFiles).map { $0.fd >= 0 } ?? false
    }

    private static func stamp(_ path: String) -> Stamp {
        var info = stat()
        guard lstat(path, &info) == 0 else { return Stamp(device: 0, inode: 0) }
        return Stamp(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}
