import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file-system view of a sandbox, built by its init in a mount namespace of its own: an
/// empty, read-only tmpfs root holding read-only clones of the readable paths (and of the
/// program and the libraries it runs from), read-write clones of the writable ones, a private
/// `/tmp` and `/dev/shm`, a minimal `/dev` and a `/proc` of the sandbox's own PID namespace.
///
/// Every source is cloned (`open_tree`) and made read-only (`mount_setattr`, recursively,
/// before it is attached) while this machine's tree is still visible; then the tmpfs goes over
/// a directory of it (`/tmp`: the mount namespace is private, nobody else sees it), the clones
/// are attached inside, and the tmpfs becomes the root (`pivot_root`), the old root detached.
struct SandboxMounts {
    /// A path visible inside, for Landlock's rules.
    struct Visible: Sendable, Hashable, Codable {
        var path: String
        var writable: Bool
        var isDirectory: Bool
    }

    private enum Source {
        case tree(Int32, isDirectory: Bool)
        case symlink(String)
    }

    private struct Entry {
        var path: String
        var writable: Bool
        var source: Source
    }

    private static let readOnly: UInt64 = 0x1, noSetuid: UInt64 = 0x2, noDevices: UInt64 = 0x4,
        noExec: UInt64 = 0x8

    /// Builds the view and moves the calling process into it. Returns what is visible inside,
    /// and why there is no private `/tmp` if there is none although one was asked for.
    ///
    /// `asTemplate`: only the part every sandbox of this kind shares (``SandboxViewTemplates``),
    /// with empty mount points for `/tmp`, `/dev/shm` and `/proc` where each sandbox mounts its
    /// own (``enterCopy(of:_:ownsProcFS:keeping:)``, next); `namespace` is then the view's mount
    /// namespace, opened while this machine's `/proc` was visible (-1 otherwise).
    static func build(
        _ sandbox: Sandbox, automaticPaths: [String], ownsProcFS: Bool, asTemplate: Bool = false
    )
        throws(SandboxError)
        -> (visible: [Visible], temporaryDirectoryFailure: String?, namespace: Int32)
    {
        func fail(_ reason: String) -> SandboxError { .unavailable(.fileSystem, reason: reason) }
        let workingDirectory = currentDirectory()
        if let failure = SandboxProgress.failure(
            "unshare(CLONE_NEWNS)", mp_sb_unshare(SandboxCredentials.Namespace.mount))
        {
            throw fail(failure)
        }
        let namespace = asTemplate ? open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC) : -1
        var built = false
        defer { if !built && namespace >= 0 { close(namespace) } }
        if mount(nil, "/", nil, UInt(MS_REC | MS_PRIVATE), nil) != 0 {
            throw fail(SandboxProgress.reason("making / private", errno))
        }
        // The sources, cloned while they are still reachable.
        var entries: [Entry] = []
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func add(_ path: String, writable: Bool, required: Bool, symlinksKept: Bool) throws(SandboxError) {
            var info = stat()
            guard lstat(path, &info) == 0 else {
                if required { throw fail(SandboxProgress.reason("'\(path)'", errno)) }
                return
            }
            if symlinksKept, info.st_mode & S_IFMT == S_IFLNK {
                var target = [CChar](repeating: 0, count: 4096)
                let n = readlink(path, &target, target.count - 1)
                guard n > 0 else { throw fail(SandboxProgress.reason("readlink '\(path)'", errno)) }
                let text = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                entries.append(Entry(path: path, writable: false, source: .symlink(text)))
                return
            }
            let fd = mp_sb_open_tree(path)
            guard fd >= 0 else { throw fail(SandboxProgress.failure("open_tree '\(path)'", fd)!) }
            opened.append(fd)
            let attributes = noSetuid | noDevices | (writable ? 0 : readOnly)
            let rc = mp_sb_mount_setattr(fd, attributes, 0)
            if rc < 0 { throw fail(SandboxProgress.failure("mount_setattr '\(path)'", rc)!) }
            let isDirectory = mp_sb_path_is_directory(path) == 1
            entries.append(Entry(path: path, writable: writable, source: .tree(fd, isDirectory: isDirectory)))
        }
        let listed = Set(sandbox.readablePaths + sandbox.writablePaths)
        for path in sandbox.writablePaths {
            try add(path, writable: true, required: true, symlinksKept: true)
        }
        for path in sandbox.readablePaths where !sandbox.writablePaths.contains(path) {
            let system = Sandbox.systemPaths.contains(path)
            try add(path, writable: false, required: !system, symlinksKept: true)
        }
        for path in automaticPaths where !listed.contains(path) {
            let covered = entries.contains { entry in
                guard case .tree(_, true) = entry.source else { return false }
                return path.hasPrefix(entry.path + "/")
            }
            if !covered { try add(path, writable: false, required: false, symlinksKept: false) }
        }
        var devices: [(String, Int32)] = []
        for name in ["null", "zero", "full", "random", "urandom", "tty"] {
            let fd = mp_sb_open_tree("/dev/" + name)
            guard fd >= 0 else { continue }
            opened.append(fd)
            _ = mp_sb_mount_setattr(fd, noSetuid | noExec, 0)
            devices.append((name, fd))
        }
        var sharedMemory: Int32 = -1
        if sandbox.sharesNamedSharedMemory {
            sharedMemory = mp_sb_open_tree("/dev/shm")
            guard sharedMemory >= 0 else {
                throw fail(SandboxProgress.failure("open_tree '/dev/shm'", sharedMemory)!)
            }
            opened.append(sharedMemory)
            _ = mp_sb_mount_setattr(sharedMemory, noSetuid | noDevices | noExec, 0)
        }
        var hostProc: Int32 = -1
        if !ownsProcFS {
            // Not the init of a PID namespace of its own: this machine's /proc, read-only.
            hostProc = mp_sb_open_tree("/proc")
            guard hostProc >= 0 else { throw fail(SandboxProgress.failure("open_tree '/proc'", hostProc)!) }
            opened.append(hostProc)
            _ = mp_sb_mount_setattr(hostProc, readOnly | noSetuid | noDevices | noExec, 0)
        }

        // The new root, over a directory nobody outside this namespace sees change.
        let candidates: [String] = ["/tmp", "/mnt", "/var/tmp"]
        let staging = candidates.first { mp_sb_path_is_directory($0) == 1 } ?? "/tmp"
        if mount("tmpfs", staging, "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=0755,size=1m") != 0 {
            throw fail(SandboxProgress.reason("mounting the root tmpfs", errno))
        }
        var visible: [Visible] = []
        // The private /tmp first: listed paths below /tmp go on top of it.
        var temporaryDirectoryFailure: String?
        if let size = sandbox.temporaryDirectorySize, !entries.contains(where: { $0.path == "/tmp" }) {
            _ = mkdir(staging + "/tmp", 0o1777)
            if asTemplate {
                // Each sandbox's own.
            } else if mount(
                "tmpfs", staging + "/tmp", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777,size=\(size)") == 0
            {
                visible.append(Visible(path: "/tmp", writable: true, isDirectory: true))
            } else {
                temporaryDirectoryFailure = SandboxProgress.reason("mounting /tmp", errno)
            }
        }
        let mountPoints = Set(
            entries.compactMap { entry -> String? in
                if case .tree(_, true) = entry.source { return entry.path }
                return nil
            })
        var previousTarget: String?
        for entry in entries.sorted(by: { $0.path < $1.path }) {
            let target = staging + entry.path
            let inside = mountPoints.contains { entry.path.hasPrefix($0 + "/") }
            switch entry.source {
            case .symlink(let destination):
                if !inside { makeParents(of: target, below: staging, after: &previousTarget) }
                if symlink(destination, target) != 0 && errno != EEXIST {
                    throw fail(SandboxProgress.reason("symlink '\(entry.path)'", errno))
                }
            case .tree(let fd, let isDirectory):
                if !inside {
                    makeParents(of: target, below: staging, after: &previousTarget)
                    if isDirectory {
                        _ = mkdir(target, 0o755)
                    } else {
                        let file = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                        if file >= 0 { close(file) }
                    }
                }
                let rc = mp_sb_move_mount(fd, target)
                if rc < 0 { throw fail(SandboxProgress.failure("attaching '\(entry.path)'", rc)!) }
                visible.append(Visible(path: entry.path, writable: entry.writable, isDirectory: isDirectory))
            }
        }
        // /dev: the harmless devices, the usual links, a private /dev/shm.
        _ = mkdir(staging + "/dev", 0o755)
        for (name, fd) in devices {
            let target = staging + "/dev/" + name
            let file = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if file >= 0 { close(file) }
            if mp_sb_move_mount(fd, target) < 0 { _ = unlink(target) }
        }
        for (name, destination) in [
            ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            _ = symlink(destination, staging + "/dev/" + name)
        }
        _ = mkdir(staging + "/dev/shm", 0o1777)
        if sharedMemory >= 0 {
            if mp_sb_move_mount(sharedMemory, staging + "/dev/shm") < 0 {
                throw fail(SandboxProgress.reason("attaching /dev/shm", errno))
            }
            visible.append(Visible(path: "/dev/shm", writable: true, isDirectory: true))
        } else if !asTemplate {
            let size = sandbox.temporaryDirectorySize ?? (1 << 20)
            if mount(
                "tmpfs", staging + "/dev/shm", "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC),
                "mode=1777,size=\(size)")
                != 0
            {
                throw fail(SandboxProgress.reason("mounting /dev/shm", errno))
            }
            visible.append(Visible(path: "/dev/shm", writable: true, isDirectory: true))
        }
        // /proc: the sandbox's own, or this machine's where the sandbox shares its PID namespace.
        _ = mkdir(staging + "/proc", 0o555)
        if hostProc >= 0 {
            if mp_sb_move_mount(hostProc, staging + "/proc") < 0 {
                throw fail(SandboxProgress.reason("attaching /proc", errno))
            }
        } else if !asTemplate,
            mount("proc", staging + "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0
        {
            throw fail(SandboxProgress.reason("mounting /proc", errno))
        }
        // Nothing can be created at the root, and nothing inside is setuid or a device node.
        let rc = mp_sb_mount_setattr_path(staging, readOnly | noSetuid | noDevices, 0)
        if rc < 0 { throw fail(SandboxProgress.failure("making the root read-only", rc)!) }
        guard chdir(staging) == 0 else { throw fail(SandboxProgress.reason("chdir", errno)) }
        let pivoted = mp_sb_pivot_root(".", ".")
        if pivoted < 0 { throw fail(SandboxProgress.failure("pivot_root", pivoted)!) }
        // The old root is stacked on the new one: detach it, and nothing of it is reachable.
        if umount2(".", Int32(MNT_DETACH)) != 0 {
            throw fail(SandboxProgress.reason("detaching the old root", errno))
        }
        // The working directory is never left outside the new root (a way out through "..").
        if chdir(workingDirectory) != 0 { _ = chdir("/") }
        built = true
        return (visible, temporaryDirectoryFailure, namespace)
    }

    /// Moves the calling process into a copy of a view template (`template`, a mount namespace;
    /// `nil`: the one it is in, just built by ``build(_:automaticPaths:ownsProcFS:asTemplate:)``)
    /// and mounts what is its own: a private `/tmp` (if asked for), `/dev/shm` (unless this
    /// machine's is shared) and the `/proc` of its PID namespace (where it has one). Returns
    /// what these add to the visible paths, and why there is no private `/tmp` if there is none.
    ///
    /// `keeping`: files of the template below `/tmp` (the running program's, when it runs from
    /// there) that stay visible through the private `/tmp`: cloned before it is mounted, then
    /// attached in it at the same paths, read-only as they were.
    static func enterCopy(
        of template: Int32?, _ sandbox: Sandbox, ownsProcFS: Bool, keeping: [String] = []
    ) throws(SandboxError)
        -> (visible: [Visible], temporaryDirectoryFailure: String?)
    {
        func fail(_ reason: String) -> SandboxError { .unavailable(.fileSystem, reason: reason) }
        let workingDirectory = currentDirectory()
        if let template,
            let failure = SandboxProgress.failure(
                "setns(CLONE_NEWNS)", mp_sb_setns(template, SandboxCredentials.Namespace.mount))
        {
            throw fail(failure)
        }
        // A namespace of its own: nothing mounted below reaches the template or another sandbox.
        if let failure = SandboxProgress.failure(
            "unshare(CLONE_NEWNS)", mp_sb_unshare(SandboxCredentials.Namespace.mount))
        {
            throw fail(failure)
        }
        var visible: [Visible] = []
        var temporaryDirectoryFailure: String?
        if let size = sandbox.temporaryDirectorySize {
            var kept: [(path: String, fd: Int32)] = []
            defer { for clone in kept { close(clone.fd) } }
            for path in keeping.sorted() where path.hasPrefix("/tmp/") {
                let fd = mp_sb_open_tree(path)
                guard fd >= 0 else { throw fail(SandboxProgress.failure("open_tree '\(path)'", fd)!) }
                kept.append((path, fd))
            }
            if mount("tmpfs", "/tmp", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=1777,size=\(size)") == 0 {
                visible.append(Visible(path: "/tmp", writable: true, isDirectory: true))
                var previous: String?
                for clone in kept {
                    makeParents(of: clone.path, below: "", after: &previous)
                    let file = open(clone.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
                    if file >= 0 { close(file) }
                    let rc = mp_sb_move_mount(clone.fd, clone.path)
                    if rc < 0 { throw fail(SandboxProgress.failure("attaching '\(clone.path)'", rc)!) }
                }
            } else {
                temporaryDirectoryFailure = SandboxProgress.reason("mounting /tmp", errno)
            }
        }
        if !sandbox.sharesNamedSharedMemory {
            let size = sandbox.temporaryDirectorySize ?? (1 << 20)
            if mount(
                "tmpfs", "/dev/shm", "tmpfs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), "mode=1777,size=\(size)"
            )
                != 0
            {
                throw fail(SandboxProgress.reason("mounting /dev/shm", errno))
            }
            visible.append(Visible(path: "/dev/shm", writable: true, isDirectory: true))
        }
        if ownsProcFS, mount("proc", "/proc", "proc", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) != 0 {
            throw fail(SandboxProgress.reason("mounting /proc", errno))
        }
        if chdir(workingDirectory) != 0 { _ = chdir("/") }
        return (visible, temporaryDirectoryFailure)
    }

    /// `mkdir -p` of `path`'s parent, below `root` (the tmpfs being built), but for the parents
    /// it shares with `previous` (the entries come sorted: a library directory is made once,
    /// not once per library). In C: string slicing here costs a fresh child more than the calls.
    private static func makeParents(of path: String, below root: String, after previous: inout String?) {
        if let before = previous {
            mp_sb_make_parents(path, before, root.utf8.count)
        } else {
            mp_sb_make_parents(path, nil, root.utf8.count)
        }
        previous = path
    }

    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The files this process runs from (its binary, the libraries it has mapped): visible in
    /// every sandbox, so that crash reports name frames and a copy of the binary can start.
    static func runningFiles() -> [String] {
        guard let maps = SandboxCgroups.readText("/proc/self/maps") else { return [] }
        var paths: [String] = []
        var seen = Set<String>()
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if path.hasSuffix(" (deleted)") || path.hasPrefix("/dev/") || path.hasPrefix("/memfd:") {
                continue
            }
            if seen.insert(path).inserted { paths.append(path) }
        }
        return paths
    }
}
