import Glibc
import Synchronization
import SystemPackage
import Testing

@testable import Multiprocessing

/// How many times the test's SIGUSR2 handler ran.
private let interruptions = Atomic<Int>(0)

/// The system-call layer (System/Syscall.swift): its interrupt policy and its errors.
@Suite("System-call layer")
struct SyscallTests {
    @Test("a blocking read interrupted by a signal (no SA_RESTART) is retried and still returns the data")
    func readRetriesEINTR() async throws {
        // A handler without SA_RESTART: the kernel fails the blocked read with EINTR.
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptions.add(1, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var previous = sigaction()
        #expect(sigaction(SIGUSR2, &action, &previous) == 0)
        defer { sigaction(SIGUSR2, &previous, nil) }

        let (readEnd, writeEnd) = try Syscall.pipe()
        defer {
            Syscall.close(readEnd)
            Syscall.close(writeEnd)
        }
        let reader = Mutex<pthread_t?>(nil)
        let outcome = Mutex<Result<[UInt8], SystemError>?>(nil)
        try OSThread.detach(name: "eintr-reader") {
            var mask = sigset_t()
            sigemptyset(&mask)
            sigaddset(&mask, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &mask, nil)
            reader.withLock { $0 = pthread_self() }
            var buffer = [UInt8](repeating: 0, count: 4)
            let result = buffer.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) in try Syscall.read(readEnd, raw.baseAddress, raw.count) }
            }
            outcome.withLock { $0 = result.map { Array(buffer[..<$0]) } }
        }
        while reader.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(1)) }
        let thread = reader.withLock { $0! }
        // Interrupt the blocked read several times (counted by the handler), then send data.
        let before = interruptions.load(ordering: .relaxed)
        // (A read that gave up on EINTR has ended its thread: stop signalling then.)
        while interruptions.load(ordering: .relaxed) < before + 5, outcome.withLock({ $0 }) == nil {
            pthread_kill(thread, SIGUSR2)
            try await Task.sleep(for: .milliseconds(5))
        }
        var bytes: [UInt8] = [1, 2, 3]
        #expect(try Syscall.write(writeEnd, &bytes, 3) == 3)
        while outcome.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(1)) }
        #expect(try outcome.withLock { $0! }.get() == [1, 2, 3])
    }

    @Test("a failed call throws the real errno with the call's name")
    func errorsCarryErrno() {
        // No descriptor can have this number (it is above any descriptor limit).
        var byte: UInt8 = 0
        #expect {
            _ = try Syscall.read(1_000_000, &byte, 1)
        } throws: { error in
            guard let error = error as? SystemError else { return false }
            return error.errno == .badFileDescriptor && error.code == EBADF && error.operation == "read"
        }
        let error = SystemError("socketpair", errno: .tooManyOpenFiles)
        #expect(error.code == EMFILE)
        #expect(error.description.contains("socketpair"))
    }
}
