#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Free-function aliases for calls whose names clash with methods of the types that use them
// (`close()`, `send(_:)`, `poll(timeout:)`), without naming the C library module.

@inline(__always) func systemClose(_ fd: Int32) { _ = close(fd) }

@inline(__always) func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if os(Linux)
        send(fd, bytes, count, Int32(MSG_NOSIGNAL))
    #else
        send(fd, bytes, count, 0)
    #endif
}

@inline(__always) func systemPoll(_ fd: Int32, events: Int16, milliseconds: Int32) -> Int32 {
    var p = pollfd(fd: fd, events: events, revents: 0)
    return poll(&p, 1, milliseconds)
}

@inline(__always) func systemKill(_ pid: Int32, _ signal: Int32) -> Int32 { kill(pid, signal) }
