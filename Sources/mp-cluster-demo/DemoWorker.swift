import Multiprocessing
import MultiprocessingPostgres

/// A worker program: serves the demo's queue until SIGTERM (graceful) or SIGKILL (the demo's
/// fault).
enum DemoWorker {
    static func run(name: String, configuration: ClusterConfiguration, concurrency: Int) async throws {
        var options = ClusterWorkerOptions()
        options.queues = [DemoSettings.queue]
        options.concurrency = WorkerCount(concurrency)
        // Short leases, so that the killed worker's tasks come back within seconds.
        options.lease = DemoSettings.lease
        options.rescueInterval = .milliseconds(500)
        options.shutdownGrace = .seconds(5)
        let worker = ClusterWorker(
            configuration: configuration, functions: [CountPrimes.self], options: options)
        say(
            "worker \(name): pid \(CurrentProcess.pid), concurrency \(concurrency), lease \(DemoSettings.lease)"
        )
        try await worker.run()
        let statistics = worker.statistics
        say(
            "worker \(name): stopped (claimed \(statistics.claimed), recorded \(statistics.recorded), refused \(statistics.refused), handed back \(statistics.handedBack))"
        )
    }
}
