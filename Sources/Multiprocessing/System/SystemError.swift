#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed system call: which operation failed and the `errno` it reported.
public struct SystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The operation that failed, such as `"posix_spawn"` or `"socketpair"`.
    public var operation: String
    /// The `errno` value.
    public var code: Int32

    /// Creates an error for `operation` with `code` (defaults to the current `errno`).
    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    /// `"socketpair: Too many open files (errno 24)"`.
    public var description: String {
        "\(operation): \(String(cString: strerror(code))) (errno \(code))"
    }
}
