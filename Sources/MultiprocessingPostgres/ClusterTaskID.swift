/// A task's identity on the queue: its row id. Any process with access to the queue can read
/// its state and result (``ClusterPool/result(of:as:)``, ``ClusterAdmin``).
public struct ClusterTaskID: RawRepresentable, Hashable, Sendable, Comparable, Codable,
    CustomStringConvertible
{
    /// The row id.
    public var rawValue: Int64

    /// The task with this row id.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// The task with this row id.
    public init(_ rawValue: Int64) { self.rawValue = rawValue }

    /// Orders by row id (the order of submission).
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The row id in decimal.
    public var description: String { String(rawValue) }
}
