/// How a child process comes to exist.
public struct StartMethod: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable { case spawn, forkserver, fork }
    let kind: Kind

    /// Re-executes the running binary with only the child's channel inherited. Always safe; the
    /// default. Costs one exec and the binary's start-up (a few milliseconds).
    public static let spawn = StartMethod(kind: .spawn)

    /// Asks a fork server to fork the child. The server is a spawned copy of the binary that
    /// never starts a thread, so forking it is safe; starts are about as fast as `fork`. The
    /// server is started on first use and dies with this process.
    public static let forkserver = StartMethod(kind: .forkserver)

    /// Forks the calling process. Fast, but **unsafe once any thread exists** — and in a Swift
    /// program the concurrency runtime, Dispatch and this library's own I/O thread all start
    /// threads. A lock held by another thread at the moment of the fork stays locked forever in
    /// the child, which can deadlock or silently lose work; the Swift runtime's own caches (type
    /// metadata, conformances) are such locks. The library makes in the parent, before each
    /// fork, what the child's own start needs from them; what the task's code needs first in
    /// the child keeps the hazard. Prefer ``forkserver``. Offered for programs that know they
    /// are single-threaded.
    public static let fork = StartMethod(kind: .fork)

    /// `"spawn"`, `"forkserver"` or `"fork"`.
    public var description: String {
        switch kind {
        case .spawn: "spawn"
        case .forkserver: "forkserver"
        case .fork: "fork"
        }
    }
}
