import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The number of CPUs this process may really use: the affinity mask, capped by a cgroup CPU
/// quota (what CPython 3.13's `process_cpu_count` and loky's `cpu_count` report).
enum CPUCount {
    static let current: Int = compute()

    static func compute() -> Int {
        var count = affinityCount() ?? onlineCount()
        if let quota = cgroupQuota() { count = min(count, quota) }
        return max(1, count)
    }

    static func onlineCount() -> Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    static func affinityCount() -> Int? {
        let count = mp_affinity_count()
        return count > 0 ? Int(count) : nil
    }

    /// CPUs allowed by the CFS quota of this process's cgroup (v2 `cpu.max`, v1 `cpu.cfs_*`),
    /// rounded up, or `nil` when there is no limit.
    static func cgroupQuota() -> Int? {
        #if os(Linux)
            guard let membership = FileSystem.readText("/proc/self/cgroup") else { return nil }
            var best: Int?
            for line in membership.split(separator: "\n") {
                // "hierarchy-id:controllers:path"
                let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard parts.count == 3 else { continue }
                let controllers = parts[1].split(separator: ",")
                let path = String(parts[2])
                var limit: Int?
                if parts[0] == "0" && parts[1].isEmpty {
                    limit = quotaV2(path: path)
                } else if controllers.contains("cpu") {
                    limit = quotaV1(path: path)
                }
                if let limit { best = min(best ?? limit, limit) }
            }
            return best
        #else
            return nil
        #endif
    }

    /// Walks from the cgroup up to the root: a parent's limit applies to its children too.
    private static func quotaV2(path: String) -> Int? {
        var current = path
        var best: Int?
        while true {
            if let text = FileSystem.readText("/sys/fs/cgroup\(current == "/" ? "" : current)/cpu.max") {
                let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
                if fields.count >= 2, let quota = Double(fields[0]), let period = Double(fields[1]),
                    period > 0
                {
                    let cpus = Int((quota / period).rounded(.up))
                    best = min(best ?? cpus, cpus)
                }
            }
            guard current != "/", let slash = current.lastIndex(of: "/") else { break }
            current = slash == current.startIndex ? "/" : String(current[..<slash])
        }
        return best
    }

    private static func quotaV1(path: String) -> Int? {
        for base in ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"] {
            for dir in [base + (path == "/" ? "" : path), base] {
                guard let q = FileSystem.readText(dir + "/cpu.cfs_quota_us"),
                    let p = FileSystem.readText(dir + "/cpu.cfs_period_us"),
                    let quota = Double(q.filter { !$0.isWhitespace }),
                    let period = Double(p.filter { !$0.isWhitespace })
                else { continue }
                guard quota > 0, period > 0 else { return nil }
                return Int((quota / period).rounded(.up))
            }
        }
        return nil
    }
}
