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
    /// The peer sent descriptors its frames do not account for: more than a frame announces
    /// or may carry (`received` where at most `allowed` fit), or with no frame at all. The
    /// peer is broken or hostile: every descriptor held for it was closed at once, and every
    /// later receive on this end fails with this error.
    case unexpectedDescriptors(received: Int, allowed: Int)
    /// The kernel dropped descriptors sent with a frame (`MSG_CTRUNC`): they could not be
    /// installed in this process, almost always because it is at its descriptor limit
    /// (`RLIMIT_NOFILE`). The frame cannot be delivered whole, so the end is broken from then on;
    /// the descriptors that did arrive were closed.
    case descriptorsDropped
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
        case .unexpectedDescriptors(let received, let allowed):
            "the peer sent \(received) descriptor(s) where its frames allow \(allowed): the connection is refused as broken or hostile, and they were closed"
        case .descriptorsDropped:
            "the kernel dropped descriptors sent with a frame (MSG_CTRUNC): this process is probably at its descriptor limit; the frame is lost and the connection broken"
        case .system(let error): error.description
        }
    }
}
