/// Why a channel operation failed. Nothing about a channel hangs or crashes: a closed end, a
/// dead peer, a time-out and a malformed frame each have their own case.
public enum ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// This end was closed (by ``ProcessChannel/close()``, or because it was handed to a child).
    case closed
    /// The other end is gone: it was closed or its process died.
    case peerClosed
    /// Nothing arrived (or could be sent) within the time-out.
    case timedOut
    /// The waiting task was cancelled.
    case cancelled
    /// The bytes on the wire are not a frame of this library.
    case corruptFrame(String)
    /// A frame announced more bytes than this channel accepts.
    case frameTooLarge(length: Int, limit: Int)
    /// A message could not be encoded or decoded.
    case codec(CodecError)
    /// A typed message was expected and raw bytes arrived, or the reverse.
    case unexpectedFrameKind(expected: String, received: String)
    /// A system call failed.
    case system(SystemError)

    /// A sentence that says what went wrong.
    public var description: String {
        switch self {
        case .closed: "the channel end is closed"
        case .peerClosed: "the peer closed the channel or its process died"
        case .timedOut: "the channel operation timed out"
        case .cancelled: "the channel operation was cancelled"
        case .corruptFrame(let why): "corrupt frame: \(why)"
        case .frameTooLarge(let length, let limit):
            "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .codec(let error): "message codec: \(error)"
        case .unexpectedFrameKind(let expected, let received): "expected \(expected), received \(received)"
        case .system(let error): error.description
        }
    }
}
