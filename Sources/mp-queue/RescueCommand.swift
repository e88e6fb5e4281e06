import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue rescue`: expired leases back to the queue now.
struct RescueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescue",
        abstract: "Return expired leases to the queue now (live workers do it every few seconds).")

    @OptionGroup var common: CommonOptions

    struct Output: Encodable {
        var rescued: Int
    }

    func run() async throws {
        let rescued = try await common.withAdmin { admin in try await admin.rescueExpiredLeases() }
        if common.json {
            try Report.printJSON(Output(rescued: rescued))
        } else {
            print("returned \(rescued) expired lease\(rescued == 1 ? "" : "s") to the queue")
        }
    }
}
