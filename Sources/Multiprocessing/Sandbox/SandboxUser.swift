/// Who a sandboxed child runs as when it is started by root.
public struct SandboxUser: Sendable, Hashable, Codable {
    /// The user id.
    public var uid: UInt32
    /// The group id (also its only supplementary group).
    public var gid: UInt32

    /// A user and group.
    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    /// `nobody`/`nogroup` (65534).
    public static var nobody: SandboxUser { SandboxUser(uid: 65534, gid: 65534) }
}
