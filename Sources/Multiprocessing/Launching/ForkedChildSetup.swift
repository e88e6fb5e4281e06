#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a `.fork` child sets up before it serves (its environment, its working directory), made
/// in the parent as C strings so that the child only has to hand them to C
/// (`mp_forked_child_setup`): no Swift value is made between the fork and the first receive.
struct ForkedChildSetup {
    /// Name, value, name, value, ...: the child defaults with the caller's variables over them.
    let variables: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int32
    let workingDirectory: UnsafeMutablePointer<CChar>?
    /// Like a spawned child: no inherited backtracer unless this process asked for one.
    let resetsBacktracer: Bool

    init(environment: [String: String], workingDirectory: String?) {
        let merged = Launcher.childVariables(with: environment)
        variables = .allocate(capacity: max(1, merged.count * 2))
        var i = 0
        for (name, value) in merged {
            variables[i] = strdup(name)
            variables[i + 1] = strdup(value)
            i += 2
        }
        count = Int32(i)
        self.workingDirectory = workingDirectory.flatMap { strdup($0) }
        resetsBacktracer = Launcher.childDefaults["SWIFT_BACKTRACE"] != nil
    }

    /// Frees the strings (in the parent, after the fork).
    func release() {
        for i in 0..<Int(count) { free(variables[i]) }
        variables.deallocate()
        free(workingDirectory)
    }
}
