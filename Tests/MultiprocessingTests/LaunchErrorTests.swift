import Glibc
import Testing

@testable import Multiprocessing

/// The typed errors a start throws when it fails for a reason that is not a system call.
@Suite("Launch errors")
struct LaunchErrorTests {
    @Test("a fork-server start whose environment is larger than a request says so, with the sizes")
    func forkServerRequestTooLarge() async throws {
        let big = String(repeating: "x", count: ForkServer.requestLimit)
        for blocking in [false, true] {
            let child = try ChildProcess(
                Doubler(value: 1), startMethod: .forkserver, environment: ["BIG": big])
            let failure: ProcessError?
            if blocking {
                let started = try await BlockingThreads.shared.result { () throws(ProcessError) in
                    try child.start()
                }
                if case .failure(let error) = started { failure = error } else { failure = nil }
            } else {
                do throws(ProcessError) {
                    try await child.start()
                    failure = nil
                } catch {
                    failure = error
                }
            }
            guard case .forkServerRequestTooLarge(let bytes, let limit) = failure else {
                Issue.record("expected forkServerRequestTooLarge, got \(String(describing: failure))")
                continue
            }
            #expect(limit == ForkServer.requestLimit)
            #expect(bytes > limit)
            #expect(child.pid == nil)
        }
    }

    @Test("a fork server that dies before answering fails the waiting start with forkServerExited")
    func forkServerExitedBeforeAnswering() async throws {
        // A server of this test's own: the shared one serves other tests.
        let server = try ForkServer()
        let (mine, theirs) = try Syscall.socketPair()
        defer {
            Syscall.close(mine)
            Syscall.close(theirs)
        }
        // Stopped, it takes the request (the socket buffers it) and never answers.
        try Syscall.kill(server.serverPID, SIGSTOP)
        let answer = Task { () -> ProcessError? in
            do throws(ProcessError) {
                _ = try await server.fork(
                    channelFD: theirs, stderrFD: -1, environment: [:], workingDirectory: nil
                ) {
                    _ in preconditionFailure("a stopped server reported a child")
                }
                return nil
            } catch {
                return error
            }
        }
        while server.pendingRequests == 0 { try await Task.sleep(for: .milliseconds(1)) }
        try Syscall.kill(server.serverPID, SIGKILL)
        let failure = await answer.value
        guard case .forkServerExited = failure else {
            Issue.record("expected forkServerExited, got \(String(describing: failure))")
            return
        }
        #expect(server.pendingRequests == 0)
    }
}
