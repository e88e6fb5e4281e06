import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: which operation failed and the `errno` it reported.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The operation that failed, such as `"posix_spawn"` or `"socketpair"`.
    public var operation: String
    /// The error the system reported (swift-system's `Errno`).
    public var errno: Errno

    /// The raw `errno` value.
    public var code: Int32 {
        get { errno.rawValue }
        set { errno = Errno(rawValue: newValue) }
    }

    /// Creates an error for `operation` with `code` (defaults to the current `errno`).
    public init(_ operation: String, code: Int32 = currentErrno()) {
        self.operation = operation
        self.errno = Errno(rawValue: code)
    }

    /// Creates an error for `operation` with `errno`.
    public init(_ operation: String, errno: Errno) {
        self.operation = operation
        self.errno = errno
    }

    /// `"socketpair: Too many open files (errno 24)"`.
    public var description: String {
        "\(operation): \(String(cString: strerror(code))) (errno \(code))"
    }
}

/// The calling thread's `errno` (a function, so that `SystemError`'s own `errno` does not hide
/// it in a default argument).
@usableFromInline @inline(__always) func currentErrno() -> Int32 {
    #if canImport(Glibc)
        Glibc.errno
    #else
        Darwin.errno
    #endif
}
