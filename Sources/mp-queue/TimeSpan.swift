import ArgumentParser

/// A duration on the command line: a number with a unit, `500ms`, `30s`, `15m`, `12h`, `7d`
/// (a bare number is seconds).
struct TimeSpan: ExpressibleByArgument, Sendable {
    var duration: Duration

    init(_ duration: Duration) { self.duration = duration }

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        var number = Substring(argument)
        var scale = 1.0
        for (suffix, factor) in units where argument.hasSuffix(suffix) {
            let candidate = argument.dropLast(suffix.count)
            // "ms" also ends in "s": take the longest suffix whose rest is a number.
            if Double(candidate) != nil {
                number = candidate
                scale = factor
                break
            }
        }
        guard let value = Double(number), value >= 0, value.isFinite, value * scale < 1e12 else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
    }

    var defaultValueDescription: String { format(duration) }
}

/// `1.5s`, `3m 20s`, `2h 5m`, `4d 3h`: short and readable.
func format(_ duration: Duration) -> String {
    let milliseconds =
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    if milliseconds < 60_000 {
        let tenths = (milliseconds + 50) / 100
        return "\(tenths / 10).\(tenths % 10)s"
    }
    let seconds = milliseconds / 1000
    func pair(_ major: Int64, _ unit: String, _ minor: Int64, _ minorUnit: String) -> String {
        minor == 0 ? "\(major)\(unit)" : "\(major)\(unit) \(minor)\(minorUnit)"
    }
    if seconds < 3600 { return pair(seconds / 60, "m", seconds % 60, "s") }
    if seconds < 86_400 { return pair(seconds / 3600, "h", seconds % 3600 / 60, "m") }
    return pair(seconds / 86_400, "d", seconds % 86_400 / 3600, "h")
}

/// A duration in seconds, for JSON.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
