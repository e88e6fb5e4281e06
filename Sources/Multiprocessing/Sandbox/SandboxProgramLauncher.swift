#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Executes a sandbox's program in its task process.
enum SandboxProgramLauncher {
    static func exec(_ program: SandboxProgramPlan, descriptors: [Int32]) -> Never {
        guard descriptors.count >= 3 else { _exit(127) }
        for (index, fd) in descriptors.prefix(3).enumerated() { _ = dup2(fd, Int32(index)) }
        // Everything else is close-on-exec (the channel, the lifeline, the frame's descriptors).
        if let directory = program.workingDirectory, chdir(directory) != 0 {
            report("\(program.executable): cannot enter \(directory): \(String(cString: strerror(errno)))")
            _exit(126)
        }
        let argv = ([program.executable] + program.arguments).map { strdup($0) } + [nil]
        let envp = program.environment.map { strdup($0) } + [nil]
        execve(program.executable, argv, envp)
        report("\(program.executable): \(String(cString: strerror(errno)))")
        _exit(errno == ENOENT ? 127 : 126)
    }
}
