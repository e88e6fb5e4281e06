import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue workers`: the registered workers and what they hold.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "Show the workers: host, pid, concurrency, last heartbeat, tasks held.",
        discussion: "A worker is live while it renewed its heartbeat within two leases; silent otherwise.")

    @OptionGroup var common: CommonOptions

    @Flag(help: "Only the live workers.")
    var live = false

    struct Output: Encodable {
        var workers: [Report.Worker]
    }

    func run() async throws {
        var workers = try await common.withAdmin { admin in try await admin.workers() }
        if live { workers = workers.filter(\.isLive) }
        if common.json {
            try Report.printJSON(Output(workers: workers.map(Report.Worker.init)))
        } else {
            print(Report.workersTable(workers))
        }
    }
}
