import Testing

@testable import Multiprocessing

/// The hand-written format a sandbox's plan, report and exit travel in: every field survives the
/// trip, and truncated or corrupt bytes are refused, never half-read.
@Suite("Sandbox byte format")
struct SandboxBytesTests {
    /// A plan with every field away from its default.
    static func unusualPlan() throws -> SandboxPlan {
        var sandbox = Sandbox.strict
        sandbox.network = .host
        sandbox.readablePaths = ["/etc/ssl", "/opt/ünïcode path"]
        sandbox.writablePaths = ["/var/tmp/out"]
        sandbox.temporaryDirectorySize = 1 << 20
        sandbox.sharesNamedSharedMemory = false
        sandbox.isolatesIPC = false
        sandbox.hostname = "box"
        sandbox.limits = SandboxLimits(
            cpuTime: .milliseconds(1500), memory: 300 << 20, processes: 7, openFiles: 99, fileSize: 4096,
            allowsCoreDumps: true)
        sandbox.systemCalls = SystemCallFilter(
            allowsNewSockets: true, allowsExec: false, additionalDenials: ["uname"])
        sandbox.usesLandlock = false
        sandbox.user = SandboxUser(uid: 1234, gid: 5678)
        sandbox.enforcement = .bestEffort
        let program = SandboxProgramPlan(
            executable: "/bin/sh", arguments: ["sh", "-c", "echo $X"], environment: ["X=1"],
            workingDirectory: "/tmp")
        return try SandboxPlan.make(sandbox, program: program)
    }

    @Test("a plan survives the trip, program, cgroups and filters included")
    func planRoundTrip() throws {
        let plan = try Self.unusualPlan()
        #expect(!plan.notifyingFilter.isEmpty && !plan.killingFilter.isEmpty)
        let decoded = try #require(SandboxPlan(bytes: plan.bytes))
        #expect(decoded.sandbox == plan.sandbox)
        #expect(decoded.program?.executable == "/bin/sh")
        #expect(decoded.program?.arguments == ["sh", "-c", "echo $X"])
        #expect(decoded.program?.environment == ["X=1"])
        #expect(decoded.program?.workingDirectory == "/tmp")
        #expect(decoded.runningFiles == plan.runningFiles)
        #expect(decoded.cgroupHierarchies.map(\.directory) == plan.cgroupHierarchies.map(\.directory))
        #expect(decoded.notifyingFilter == plan.notifyingFilter)
        #expect(decoded.killingFilter == plan.killingFilter)
        // The strict preset, with no program and no filter switches changed, too.
        let strict = try SandboxPlan.make(.strict, program: nil)
        let back = try #require(SandboxPlan(bytes: strict.bytes))
        #expect(back.sandbox == .strict)
        #expect(back.program == nil)
    }

    @Test("a CPU limit is never shortened on the way (rounded up to the microsecond)")
    func cpuTimeRoundsUp() throws {
        var sandbox = Sandbox.strict
        sandbox.limits.cpuTime = .nanoseconds(1_000_001)
        let decoded = try #require(SandboxPlan(bytes: try SandboxPlan.make(sandbox, program: nil).bytes))
        #expect(decoded.sandbox.limits.cpuTime == .microseconds(1001))
    }

    @Test("every truncation of a plan, a report or an exit is refused")
    func truncated() throws {
        let plan = try Self.unusualPlan().bytes
        for length in 0..<plan.count { #expect(SandboxPlan(bytes: Array(plan.prefix(length))) == nil) }
        var report = SandboxReport(userID: 7, groupID: 8)
        report.applied = [.network, .systemCallFilter]
        report.notApplied = [.landlock: "no Landlock here"]
        report.memoryLimitMechanism = .cgroupV1
        report.landlockABI = 0
        report.cgroupDirectories = ["/sys/fs/cgroup/a"]
        let reportBytes = report.bytes
        #expect(SandboxReport(bytes: reportBytes) == report)
        for length in 0..<reportBytes.count {
            #expect(SandboxReport(bytes: Array(reportBytes.prefix(length))) == nil)
        }
        let exit = SandboxExit(
            verdict: .systemCallDenied(name: "ptrace"), status: 31, cpuMicroseconds: 42, cgroupsRemoved: false
        )
        let exitBytes = exit.bytes
        for length in 0..<exitBytes.count {
            #expect(SandboxExit(bytes: Array(exitBytes.prefix(length))) == nil)
        }
    }

    @Test(
        "every verdict survives the trip",
        arguments: [
            nil, SandboxVerdict.cpuLimit, .memoryLimit, .processLimit, .fileSizeLimit,
            .systemCallDenied(name: "execve"), .timeLimit,
        ])
    func verdicts(verdict: SandboxVerdict?) throws {
        let exit = SandboxExit(verdict: verdict, status: 9, cpuMicroseconds: 123_456, cgroupsRemoved: true)
        let decoded = try #require(SandboxExit(bytes: exit.bytes))
        #expect(decoded.verdict == verdict)
        #expect(decoded.status == 9)
        #expect(decoded.cpuMicroseconds == 123_456)
        #expect(decoded.cgroupsRemoved)
    }

    @Test("corrupt counts and tags are refused without reading past the end")
    func corrupt() {
        // A huge string length, a huge list count, an unknown verdict tag, noise.
        var huge = SandboxBytes()
        huge.put(UInt64.max)
        #expect(SandboxReport(bytes: huge.bytes) == nil)
        #expect(SandboxPlan(bytes: huge.bytes) == nil)
        var tag = SandboxBytes()
        tag.put(UInt64(99))
        #expect(SandboxExit(bytes: tag.bytes) == nil)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let noise = (0..<Int.random(in: 0..<300, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            _ = SandboxPlan(bytes: noise)
            _ = SandboxReport(bytes: noise)
            _ = SandboxExit(bytes: noise)
        }
    }
}
