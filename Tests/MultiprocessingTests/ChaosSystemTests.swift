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
        try probe.start()
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
}
