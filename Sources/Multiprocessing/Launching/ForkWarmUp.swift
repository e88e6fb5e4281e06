import Synchronization

/// Runs, in the parent and before a `.fork`, the runtime work that a forked child's own start
/// would otherwise do first.
///
/// A forked child inherits every lock as it was at the fork. The Swift runtime makes type
/// metadata, conformance records and name lookups on first use under process-wide locks; if
/// another thread of the parent held one of them at the fork, a child that needs a new entry
/// waits for ever (seen: a child blocked decoding its ``LaunchRequest`` while the parent's other
/// threads were busy; and on the conformance cache's in its first job). Entries the parent
/// already made are read without a lock, so the library's start path in the child (the launch
/// request, the task type by name, the executor the task runs on, the outcome) is made here
/// once, and the task type on each fork. The task's own code keeps the hazard
/// that ``StartMethod/fork`` documents.
enum ForkWarmUp {
    private static let launchPath: Void = {
        let request = LaunchRequest(
            typeName: "", processName: "", payload: [0], capturesStandardOutput: true,
            observation: LaunchObservation(setupType: "", forwardedLevel: .info, traceContext: ["": ""]),
            sandbox: [0])
        if let bytes = try? TaskCoding.encode(request) {
            _ = try? TaskCoding.decode(LaunchRequest.self, from: bytes)
        }
        let failure = TaskOutcome.failure(ErrorReport(ProcessError.codec(.lengthTooLarge(0))))
        for outcome in [failure, .success([0])] {
            if let bytes = try? TaskCoding.encode(outcome) {
                _ = try? TaskCoding.decode(TaskOutcome.self, from: bytes)
            }
        }
        // The child runs its task on an InlineExecutor (seen: a child blocked on the
        // conformance cache's lock in its first job there): one empty task, run here.
        let executor = InlineExecutor()
        Task(executorPreference: executor) {}
        while executor.runPending() {}
    }()

    /// Warms the child's start path for a task of type `typeName` (a ``TypeIdentity`` name).
    static func prepare(typeName: String) {
        launchPath
        _ = TypeIdentity.resolve(typeName) as? any ProcessTask.Type
    }
}
