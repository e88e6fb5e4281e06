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
}
