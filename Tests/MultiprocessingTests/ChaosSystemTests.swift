import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Chaos: system")
struct ChaosSystemTests {
    @Test(
        "at the descriptor limit every operation throws a typed error, and works again once descriptors are free"
    )
    func descriptorLimit() async throws {
        let probe = try ChildProcess(DescriptorLimitProbe())
        try await probe.start()
        let report: DescriptorLimitProbe.Report
        do {
            report = try await probe.value
        } catch {
            Issue.record("the probe did not finish normally: \(error)")
            return
        }
        #expect(report.problems == [])
        for operation in ["child start", "channel", "shared memory", "pool"] {
            #expect(report.typedErrors[operation, default: 0] > 0, "\(operation) never met the limit")
            #expect(report.recovered[operation] == true, "\(operation) did not recover")
        }
        #expect(try await probe.join() == .exited(0))
    }

    @Test(
        "a child that writes garbage on its control channel is a protocol violation, not a crash",
        arguments: [false, true])
    func controlChannelGarbage(hang: Bool) async throws {
        let child = try ChildProcess(ControlChannelVandal(hang: hang), name: "vandal")
        try await child.start()
        // A vandal that hangs is killed for breaking the protocol: nobody waits for it.
        let status = try await child.join(timeout: .seconds(10))
        if status == nil { child.kill() }
        #expect(status != nil, "the child was left running after breaking the protocol")
        do {
            _ = try await child.value
            Issue.record("a child that broke the protocol returned a value")
        } catch ProcessError.protocolViolation(let violation) {
            #expect(violation.processName == "vandal")
            #expect(violation.reason.contains("corrupt frame"))
            #expect(violation.description.contains("broke the control protocol"))
            if hang { #expect(violation.status == .signaled(.kill)) }
        }
    }
}
