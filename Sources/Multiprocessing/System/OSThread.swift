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
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func detach(name: String, _ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
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
                box.body()
                return nil
            }, context)
        precondition(rc == 0, "swift-multiprocessing: cannot start thread \(name): \(SystemError("pthread_create", code: rc))")
        #if os(Linux)
            pthread_detach(thread)
            _ = pthread_setname_np(thread, String(name.prefix(15)))
        #else
            if let thread { pthread_detach(thread) }
        #endif
    }
}
