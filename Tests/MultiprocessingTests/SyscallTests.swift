import CMultiprocessing
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

    @Test("shm_open, stat and epoll_ctl failures carry their errno and the call's name")
    func wrapperErrors() throws {
        let name = "/mp-syscall-test-\(getpid())"
        #expect(throws: SystemError("shm_open", errno: .noSuchFileOrDirectory)) {
            try Syscall.shmOpen(name, 0)
        }
        let fd = try Syscall.shmOpen(name, O_CREAT | O_EXCL)
        defer {
            Syscall.close(fd)
            try? Syscall.shmUnlink(name)
        }
        #expect(throws: SystemError("shm_open", errno: .fileExists)) {
            try Syscall.shmOpen(name, O_CREAT | O_EXCL)
        }
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(throws: SystemError("stat", errno: .noSuchFileOrDirectory)) {
            try Syscall.fileStatus("/nonexistent/\(name)")
        }
        let epoll = try Syscall.epollCreate()
        defer { Syscall.close(epoll) }
        #expect(throws: SystemError("epoll_ctl", errno: .badFileDescriptor)) {
            try Syscall.epollControl(epoll, Int32(MP_EPOLL_CTL_ADD), 1_000_000, UInt32(MP_EPOLLIN))
        }
    }

    @Test("memfdCreate makes a close-on-exec file of the size asked for")
    func memfdSize() throws {
        let fd = try Syscall.memfdCreate("syscall-test", size: 12345)
        defer { Syscall.close(fd) }
        #expect(try Syscall.fileSize(fd) == 12345)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test("a futex wait returns at once when the word differs, and times out at a past deadline")
    func futexOutcomes() {
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 1
        #expect(Syscall.futexWait(word, 0, deadline: -1) == .woken)  // EAGAIN: look again.
        #expect(Syscall.futexWait(word, 1, deadline: 0) == .timedOut)
        #expect(Syscall.futexWake(word, 1) == 0)
    }

    @Test(
        "an epoll wait and a futex wait with no deadline return (0 ready, woken) when a signal interrupts them"
    )
    func waitsReportEINTR() async throws {
        let epoll = try Syscall.epollCreate()
        defer { Syscall.close(epoll) }
        // Nothing is registered and there is no timeout: only a signal ends the wait.
        let ready = try await Self.interrupted {
            var fds = [Int32](repeating: 0, count: 4)
            var events = [UInt32](repeating: 0, count: 4)
            return Result { () throws(SystemError) in
                try Syscall.epollWait(epoll, &fds, &events, 4, milliseconds: -1)
            }
        }
        #expect(try ready.get() == 0)
        let word = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        defer { word.deallocate() }
        word.pointee = 0
        let address = UInt(bitPattern: word)
        let outcome = try await Self.interrupted {
            Syscall.futexWait(UnsafeMutablePointer(bitPattern: address)!, 0, deadline: -1)
        }
        #expect(outcome == .woken)
    }

    /// Runs `body` on a thread of its own that takes SIGUSR2 (a handler without SA_RESTART, so
    /// a blocked call fails with EINTR) and signals it until `body` returns.
    static func interrupted<T: Sendable>(_ body: @escaping @Sendable () -> T) async throws -> T {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptions.add(1, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        var previous = sigaction()
        #expect(sigaction(SIGUSR2, &action, &previous) == 0)
        defer { sigaction(SIGUSR2, &previous, nil) }
        let thread = Mutex<pthread_t?>(nil)
        let outcome = Mutex<T?>(nil)
        try OSThread.detach(name: "eintr-waiter") {
            var mask = sigset_t()
            sigemptyset(&mask)
            sigaddset(&mask, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &mask, nil)
            thread.withLock { $0 = pthread_self() }
            let result = body()
            outcome.withLock { $0 = result }
        }
        while thread.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(1)) }
        let waiter = thread.withLock { $0! }
        while true {
            if let result = outcome.withLock({ $0 }) { return result }
            pthread_kill(waiter, SIGUSR2)
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test("a process that ended but is not reaped yet (a zombie) has ended; this one has not")
    func processStatus() throws {
        #expect(!ProcessStatus.hasEnded(getpid()))
        #expect(ProcessStatus.startTime(of: getpid()) != nil)
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        #expect(posix_spawn(&pid, "/bin/true", nil, nil, argv, nil) == 0)
        // Not reaped until the end: a zombie once it has exited (waitid with WNOWAIT says when).
        var info = siginfo_t()
        #expect(waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == 0)
        #expect(ProcessStatus.hasEnded(pid))
        var status: Int32 = 0
        #expect(try Syscall.waitpid(pid, &status, 0) == pid)
    }
}
