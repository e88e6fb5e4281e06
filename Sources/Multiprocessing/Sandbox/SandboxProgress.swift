#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a sandbox has applied so far, and its rule for what it could not: a required
/// restriction that fails stops the start (``SandboxError/unavailable(_:reason:)``); under best
/// effort it is listed as not applied and the start goes on.
struct SandboxProgress {
    let enforcement: SandboxEnforcement
    var report: SandboxReport

    init(enforcement: SandboxEnforcement) {
        self.enforcement = enforcement
        report = SandboxReport(userID: getuid(), groupID: getgid())
    }

    /// Runs a step that applies `restriction`: `body` returns `nil` on success, else why not.
    mutating func apply(_ restriction: SandboxRestriction, _ body: () -> String?) throws(SandboxError) {
        if let reason = body() {
            try skip(restriction, reason)
        } else if !report.applied.contains(restriction) {
            report.applied.append(restriction)
        }
    }

    /// `restriction` cannot be applied, for `reason`.
    mutating func skip(_ restriction: SandboxRestriction, _ reason: String) throws(SandboxError) {
        if enforcement == .required { throw .unavailable(restriction, reason: reason) }
        report.applied.removeAll { $0 == restriction }
        report.notApplied[restriction] = reason
    }

    /// `nil` for a result >= 0; for `-errno`, `"<call>: <message> (errno N)"`.
    static func failure(_ call: String, _ result: Int32) -> String? {
        result >= 0 ? nil : Self.reason(call, -result)
    }

    /// `"<call>: <message> (errno N)"`.
    static func reason(_ call: String, _ code: Int32) -> String {
        "\(call): \(String(cString: strerror(code))) (errno \(code))"
    }

    /// The result of a libc call that sets `errno`: `nil` when it succeeded.
    static func check(_ call: String, _ result: Int32) -> String? {
        result >= 0 ? nil : reason(call, errno)
    }
}
