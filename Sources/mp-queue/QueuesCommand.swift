import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue queues`: counts per state, the oldest waiting task, throughput.
struct QueuesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queues",
        abstract:
            "Show every queue: tasks per state, the oldest waiting task, tasks finished in the last minute.")

    @OptionGroup var common: CommonOptions

    struct Output: Encodable {
        var queues: [Report.Queue]
    }

    func run() async throws {
        let queues = try await common.withAdmin { admin in try await admin.queues() }
        if common.json {
            try Report.printJSON(Output(queues: queues.map(Report.Queue.init)))
        } else {
            print(Report.queuesTable(queues))
        }
    }
}
