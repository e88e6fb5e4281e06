import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue status`: queues and workers together (the default command).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the queues and the workers (the default command).")

    @OptionGroup var common: CommonOptions

    struct Output: Encodable {
        var queues: [Report.Queue]
        var workers: [Report.Worker]
    }

    func run() async throws {
        let (queues, workers) = try await common.withAdmin { admin in
            (try await admin.queues(), try await admin.workers())
        }
        if common.json {
            try Report.printJSON(
                Output(queues: queues.map(Report.Queue.init), workers: workers.map(Report.Worker.init)))
        } else {
            print(Report.queuesTable(queues))
            print()
            print(Report.workersTable(workers))
        }
    }
}
