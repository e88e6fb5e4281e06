import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A detached POSIX thread that lives as long as the process: for the I/O reactor and the
/// launcher, which must not be Dispatch or cooperative-pool threads (those come and go, and a
/// parent-death signal follows the *thread* that spawned a child).
enum OSThread {
    private final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
        func run() {
            mp_name_current_thread(name)  // Shows in `ps -L` and debuggers.
            // The reactor copies children's stderr to ours: if ours is a closed pipe, that must
            // fail the write, not kill the program.
            mp_block_sigpipe()
            body()
        }
    }

    /// Starts `body` on a new detached thread.
    ///
    /// - Throws: the `pthread_create` error (`EAGAIN` when the process or user is out of
    ///   threads or memory); `body` is not run then.
    static func detach(name: String, _ body: @escaping @Sendable () -> Void) throws(SystemError) {
        let context = Unmanaged.passRetained(Box(name, body))
        #if os(Linux)
            var thread = pthread_t()
        #else
            var thread: pthread_t?
        #endif
        let rc = pthread_create(
            &thread, nil,
            { raw in
                #if os(Linux)
                    let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                #else
                    let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
                #endif
                box.run()
                return nil
            }, context.toOpaque())
        guard rc == 0 else {
            context.release()
            throw SystemError("pthread_create (thread \(name))", code: rc)
        }
        #if os(Linux)
            pthread_detach(thread)
        #else
            if let thread { pthread_detach(thread) }
        #endif
    }
}
