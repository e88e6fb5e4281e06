/// Where a child crashed (filled in by the crash handler; see below).
public struct CrashReport: Sendable, Hashable {
    init?(payload: [UInt8]) { return nil }
}
