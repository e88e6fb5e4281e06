import CMultiprocessing
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Network namespaces made ahead for privileged sandboxes without network.
///
/// Making a network namespace is the costliest step of a sandbox's setup (~1 ms of kernel work:
/// the loopback device, the sysctl tables); with the view entered from a template
/// (``SandboxViewTemplates``), the init waited for it. A thread of this process that does nothing
/// else makes them ahead: it enters a fresh namespace (`unshare(CLONE_NEWNET)` moves only the
/// calling thread), keeps a descriptor of it and returns to this process's namespace. A start
/// takes one and sends it along; each is used once, by one sandbox, never again. Where none is
/// ready, the supervisor makes one as before. Unprivileged sandboxes make their own: theirs
/// belongs to their user namespace.
enum SandboxNetworkSupply {
    private struct State {
        var ready: [Int32] = []
        var started = false
    }
    private final class Store: Sendable {
        let state = Mutex(State())
        let wanted = DispatchSemaphore(value: 0)
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

    /// In a child made by `fork`: the parent's thread is gone and its descriptors above stdio
    /// are closed. A fresh supply, started on the child's first take.
    static func forgetAfterFork() { afterForkStore = afterForkStore == nil ? spareStore : Store() }
    /// How many are kept ready.
    private static let depth = 2

    /// A namespace taken for one start: closed with it (the sandbox has its own descriptor).
    final class Taken: Sendable {
        let fd: Int32
        init(fd: Int32) { self.fd = fd }
        deinit { close(fd) }
    }

    /// A fresh network namespace for a start in `sandbox`; `nil` where it makes its own (it
    /// reaches the network, it is not privileged, or none is ready: the next ones are being made).
    static func take(for sandbox: Sandbox) -> Taken? {
        guard sandbox.network == .none, SandboxCredentials.isPrivileged else { return nil }
        return take().map(Taken.init(fd:))
    }

    private static func take() -> Int32? {
        #if os(Linux)
            let store = self.store
            let (fd, start) = store.state.withLock { s -> (Int32?, Bool) in
                defer { s.started = true }
                return (s.ready.isEmpty ? nil : s.ready.removeFirst(), !s.started)
            }
            if start {
                try? OSThread.detach(name: "mp-netns") { makeAhead(store) }  // Without it: made per start.
            } else {
                store.wanted.signal()
            }
            return fd
        #else
            return nil
        #endif
    }

    /// The thread's loop: keeps ``depth`` namespaces ready, at a lower priority than the
    /// sandboxes it makes them for.
    private static func makeAhead(_ store: Store) {
        let flag = SandboxCredentials.Namespace.network
        let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard own >= 0 else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)  // This thread only.
        while true {
            if store.state.withLock({ $0.ready.count >= depth }) {
                store.wanted.wait()
                continue
            }
            guard mp_sb_unshare(flag) == 0 else { return }
            // Its loopback up already (the init's bringing it up then changes nothing): one
            // step less on the start's path.
            _ = mp_sb_loopback_up()
            let fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            // Back home; a thread that cannot stops making them (it holds nothing of anyone's).
            guard mp_sb_setns(own, flag) == 0 else {
                if fd >= 0 { close(fd) }
                return
            }
            guard fd >= 0 else { return }
            store.state.withLock { $0.ready.append(fd) }
        }
    }
}
