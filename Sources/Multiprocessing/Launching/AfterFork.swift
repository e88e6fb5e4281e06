/// The one place a child made by `fork` forgets the parent's per-process singletons.
///
/// After `fork` only the forking thread exists: threads a singleton started are gone, a lock
/// another thread held stays locked for ever, and descriptors above stdio were closed. Every
/// singleton that owns a thread, a lock or a descriptor is listed here, so that the fork path
/// calls one function and a new singleton cannot be forgotten in a second place.
enum AfterFork {
    /// Resets every singleton. Call in the child right after `fork`, while it has one thread.
    static func reset() {
        DeadSocket.recreateAfterFork()  // The parent's dead socket number was closed.
        Launcher.inForkedChild = true  // No launcher thread: run launches inline.
        ForkServer.forgetAfterFork()
        IOReactor.resetAfterFork()
        BlockingThreads.resetAfterFork()
        WaitThreads.resetAfterFork()
        WaitTimer.resetAfterFork()
        SandboxViewTemplates.forgetAfterFork()
        SandboxNetworkSupply.forgetAfterFork()
    }

    /// In the parent, once, before its first `.fork`: runs the code that ``reset()`` runs in the
    /// child (or makes what it takes), so that the child finds the type metadata, lazy globals
    /// and runtime caches made. Making one in the child would take the runtime's locks, which
    /// another thread of the parent may have held at the fork: the child would wait for ever.
    static func prepareForFork() {
        DeadSocket.prepareForFork()
        ForkServer.prepareForFork()
        IOReactor.prepareForFork()
        BlockingThreads.prepareForFork()
        WaitThreads.prepareForFork()
        WaitTimer.prepareForFork()
        SandboxViewTemplates.prepareForFork()
        SandboxNetworkSupply.prepareForFork()
    }
}
