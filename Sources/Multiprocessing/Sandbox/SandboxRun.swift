import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension Sandbox {
    /// Runs an external program or script in this sandbox, with its output captured, a time
    /// limit and a typed verdict: what bubblewrap and nsjail are used for.
    ///
    /// ```swift
    /// var sandbox = Sandbox.program                      // no network, read-only system files
    /// sandbox.readablePaths.append(scriptDirectory)
    /// let result = try await sandbox.run("/bin/sh", arguments: [script], timeLimit: .seconds(5))
    /// if result.verdict == .timeLimit { ... }
    /// print(result.output)
    /// ```
    ///
    /// The program and everything it needs must be visible inside (``readablePaths``; the
    /// ``program`` preset has the system's programs and libraries). Its environment is
    /// `environment` and nothing of this process's but `PATH` (`/usr/bin:/bin`) and `HOME`
    /// (`/tmp`), unless `environment` sets them. Its standard input is `input`, read from a
    /// private memory file. With ``SystemCallFilter/allowsExec`` off (the presets), the program
    /// starts and cannot start another.
    ///
    /// - Parameters:
    ///   - executable: the program's absolute path, as seen inside the sandbox.
    ///   - arguments: its arguments, after the implicit `argv[0]` (`executable`).
    ///   - environment: its environment, added to `PATH` and `HOME`.
    ///   - workingDirectory: where it starts, inside the sandbox; `nil`: where the sandbox starts it.
    ///   - input: its standard input.
    ///   - timeLimit: wall-clock time after which it is killed, with
    ///     ``SandboxVerdict/timeLimit``; `nil`: no limit but ``SandboxLimits/cpuTime``.
    ///   - outputLimit: bytes kept of each of its standard output and error; the rest is read
    ///     and dropped (``SandboxedProgramResult/outputTruncated``).
    ///   - startMethod: ``StartMethod/spawn`` or ``StartMethod/forkserver``.
    /// - Throws: ``ProcessError/sandbox(_:)`` when the sandbox cannot be applied (the program did
    ///   not run); ``ProcessError/launchFailed(_:)`` when no process could be started;
    ///   ``ProcessError/cancelled`` when the calling task is cancelled (the program is killed).
    public func run(
        _ executable: String, arguments: [String] = [], environment: [String: String] = [:],
        workingDirectory: String? = nil, input: [UInt8] = [], timeLimit: Duration? = nil,
        outputLimit: Int = 16 << 20, startMethod: StartMethod = .spawn
    ) async throws(ProcessError) -> SandboxedProgramResult {
        let variables = ["PATH": "/usr/bin:/bin", "HOME": "/tmp"].merging(environment) { $1 }
        let plan = SandboxProgramPlan(
            executable: executable, arguments: arguments,
            environment: variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            workingDirectory: workingDirectory)
        // Standard input: a memory file holding `input` (no writer to keep fed, no SIGPIPE).
        let inputFD: Int32
        do throws(SystemError) { inputFD = try Syscall.memfdCreate("sandbox-input", size: 0) } catch {
            throw .launchFailed(error)
        }
        defer { Syscall.close(inputFD) }
        if !input.isEmpty {
            let written = input.withUnsafeBytes { raw in
                Result { () throws(SystemError) in
                    try Syscall.pwrite(inputFD, raw.baseAddress, raw.count, at: 0)
                }
            }
            guard case .success(input.count) = written else {
                throw .launchFailed(SystemError("writing the input"))
            }
        }
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var rc = mp_pipe(&outPipe)
        if rc != 0 { throw .launchFailed(SystemError("pipe", code: rc)) }
        rc = mp_pipe(&errPipe)
        if rc != 0 {
            Syscall.close(outPipe[0])
            Syscall.close(outPipe[1])
            throw .launchFailed(SystemError("pipe", code: rc))
        }
        let output = SandboxOutputCollector(fd: outPipe[0], limit: outputLimit)
        let errors = SandboxOutputCollector(fd: errPipe[0], limit: outputLimit)
        let task = SandboxProgramTask(
            standardInput: .init(inputFD), standardOutput: .init(outPipe[1]), standardError: .init(errPipe[1])
        )
        let name = "sandboxed " + (executable.split(separator: "/").last.map(String.init) ?? executable)
        let child: ChildProcess<SandboxProgramTask>
        do {
            child = try ChildProcess(
                task, name: name, startMethod: startMethod, environment: [:], workingDirectory: nil,
                capturesStandardError: true, capturesStandardOutput: false, logger: nil, forwardsLogs: false,
                sandbox: self, program: plan)
            try await child.start()
        } catch {
            for fd in [outPipe[1], errPipe[1]] { Syscall.close(fd) }
            output.close()
            errors.close()
            throw error
        }
        // The child has its copies: end-of-file comes when the program's side closes.
        Syscall.close(outPipe[1])
        Syscall.close(errPipe[1])
        async let collected = output.collect()
        async let collectedErrors = errors.collect()
        var timedOut = false
        do {
            if let timeLimit {
                if try await child.join(timeout: timeLimit) == nil {
                    timedOut = true
                    child.kill()
                }
            }
            _ = try await child.join()
        } catch {
            child.kill()
            _ = await (collected, collectedErrors)
            throw .cancelled
        }
        // Whatever still holds the pipes (nothing, when the sandbox had its PID namespace) gets
        // a moment, then reading stops.
        output.finish(after: .seconds(1))
        errors.finish(after: .seconds(1))
        let (out, outTruncated) = await collected
        let (err, errTruncated) = await collectedErrors
        return SandboxedProgramResult(
            status: child.exitStatus ?? .exited(255), verdict: timedOut ? .timeLimit : child.sandboxVerdict,
            standardOutput: out, standardError: err, outputTruncated: outTruncated || errTruncated,
            report: child.sandboxReport ?? SandboxReport())
    }
}
