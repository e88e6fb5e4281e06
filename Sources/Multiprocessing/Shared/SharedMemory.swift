import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A block of memory mapped into every process that holds its handle (CPython's
/// `shared_memory.SharedMemory`).
///
/// Segments are **anonymous** by default: a `memfd` with no name anywhere, which the kernel frees
/// when the last process holding it unmaps it or dies, so there is nothing to leak and nothing
/// to clean up after a crash. To reach a child, make the segment a stored property of its task
/// or send it over a ``ProcessChannel``: the descriptor itself travels (SCM_RIGHTS).
///
/// **Named** segments (``create(name:size:lifetime:)`` / ``attach(name:)``) are for unrelated
/// processes that can only share a string. Only the creator unlinks a name: explicitly with
/// ``unlink()``, or when its handle is released if created with ``NameLifetime/untilReleased``
/// — and then also when the creator ends without releasing it, even killed by `SIGKILL`: a
/// small tracker process unlinks it then (CPython's resource tracker). An attached process
/// never removes the name, so one process finishing cannot pull a segment from under the
/// others (CPython's gh-82300). Unlinking only removes the name: processes that have the
/// segment mapped keep using it.
///
/// ```swift
/// let memory = try SharedMemory(size: 4096)
/// memory.bytes.storeBytes(of: 42, toByteOffset: 0, as: Int.self)
/// ```
public final class SharedMemory: @unchecked Sendable, Codable {
    /// How long the name of a segment made by ``create(name:size:lifetime:)`` lasts.
    public enum NameLifetime: Sendable, Hashable {
        /// The creator's handle unlinks the name when it is released (the default), and the
        /// resource tracker unlinks it if the creator ends first, however it ends.
        case untilReleased
        /// The name stays until the creator calls ``unlink()`` (or the machine restarts), even
        /// after the creator has ended.
        case untilUnlinked
    }

    /// The number of usable bytes.
    public let size: Int
    /// The segment's name (with its leading `/`), or `nil` for an anonymous segment.
    public let name: String?
    /// Whether this process created the named segment (and so may unlink it).
    public let isCreator: Bool
    /// The first byte of the mapping in this process (each process maps it at its own address).
    public let baseAddress: UnsafeMutableRawPointer

    let fd: Int32
    private let lifetime: NameLifetime
    private let nameUnlinked = Atomic<Bool>(false)
    /// The process that created the name: a forked copy of this handle never unlinks it.
    private let creatorPID: Int32

    /// Creates an anonymous segment of `size` zeroed bytes.
    public convenience init(size: Int) throws(SharedMemoryError) {
        guard size > 0 else { throw .invalidSize(size) }
        let fd: Int32
        do throws(SystemError) {
            fd = try Syscall.memfdCreate("swift-multiprocessing", size: size)
        } catch {
            throw .system(error)
        }
        try self.init(fd: fd, size: size, name: nil, isCreator: false, lifetime: .untilUnlinked)
    }

    /// Creates a named segment of `size` zeroed bytes; fails if the name is taken.
    ///
    /// With ``NameLifetime/untilReleased`` the name is registered with this process's resource
    /// tracker (started on first use); ``SharedMemoryError/system(_:)`` if it cannot be started.
    public static func create(
        name: String, size: Int, lifetime: NameLifetime = .untilReleased
    ) throws(SharedMemoryError) -> SharedMemory {
        let name = try validated(name)
        guard size > 0 else { throw .invalidSize(size) }
        let fd: Int32
        do throws(SystemError) {
            fd = try Syscall.shmOpen(name, O_CREAT | O_EXCL)
        } catch {
            if error.errno == .fileExists { throw .alreadyExists(name: name) }
            throw .system(error)
        }
        do throws(SystemError) {
            try Syscall.ftruncate(fd, size)
        } catch {
            Syscall.close(fd)
            try? Syscall.shmUnlink(name)  // Ours, just created: nobody else has it to remove.
            throw .system(error)
        }
        let memory: SharedMemory
        do {
            memory = try SharedMemory(fd: fd, size: size, name: name, isCreator: true, lifetime: lifetime)
        } catch {
            try? Syscall.shmUnlink(name)  // Ours, just created: nobody else has it to remove.
            throw error
        }
        if lifetime == .untilReleased {
            // After creating it: registering first could have the tracker unlink a segment of
            // the same name that another process owns, had our creation failed.
            do {
                try ResourceTracker.shared.register(name)
            } catch {
                memory.nameUnlinked.store(true, ordering: .relaxed)
                try? Syscall.shmUnlink(name)  // Ours, just created: nobody else has it to remove.
                throw error
            }
        }
        return memory
    }

    /// Maps the existing named segment `name`, at its full size.
    public static func attach(name: String) throws(SharedMemoryError) -> SharedMemory {
        let name = try validated(name)
        let fd: Int32
        do throws(SystemError) {
            fd = try Syscall.shmOpen(name, 0)
        } catch {
            if error.errno == .noSuchFileOrDirectory { throw .notFound(name: name) }
            throw .system(error)
        }
        let size: Int
        do throws(SystemError) {
            size = try Syscall.fileSize(fd)
        } catch {
            Syscall.close(fd)
            throw .system(error)
        }
        guard size > 0 else {
            Syscall.close(fd)
            throw .invalidSize(size)
        }
        return try SharedMemory(fd: fd, size: size, name: name, isCreator: false, lifetime: .untilUnlinked)
    }

    /// Removes the segment's name so no other process can attach it; mappings stay valid.
    /// Only the creator may do this (``SharedMemoryError/notCreator(name:)`` otherwise); a second
    /// call does nothing. Anonymous segments have no name: nothing to do.
    public func unlink() throws(SharedMemoryError) {
        guard let name else { return }
        guard isCreator else { throw .notCreator(name: name) }
        guard !nameUnlinked.load(ordering: .acquiring) else { return }
        do throws(SystemError) {
            try Syscall.shmUnlink(name)
        } catch {
            // Not marked: a later call may succeed. ENOENT: removed already, as asked.
            if error.errno != .noSuchFileOrDirectory { throw .system(error) }
        }
        if !nameUnlinked.exchange(true, ordering: .acquiringAndReleasing) && lifetime == .untilReleased {
            ResourceTracker.shared.unregister(name)
        }
    }

    /// The whole segment as raw bytes (valid while this handle lives).
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: baseAddress, count: size)
    }

    /// Calls `body` with the segment's bytes, keeping the mapping alive for the call.
    public func withUnsafeMutableBytes<Result, Failure: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withExtendedLifetime(self) { () throws(Failure) -> Result in try body(bytes) }
    }

    init(fd: Int32, size: Int, name: String?, isCreator: Bool, lifetime: NameLifetime)
        throws(SharedMemoryError)
    {
        let base: UnsafeMutableRawPointer
        do throws(SystemError) {
            base = try Syscall.mapShared(fd, size)
        } catch {
            Syscall.close(fd)
            throw .system(error)
        }
        self.fd = fd
        self.size = size
        self.name = name
        self.isCreator = isCreator
        self.lifetime = lifetime
        self.baseAddress = base
        self.creatorPID = isCreator ? mp_current_pid() : 0
    }

    deinit {
        Syscall.unmap(baseAddress, size)
        Syscall.close(fd)
        if isCreator, lifetime == .untilReleased, let name, creatorPID == mp_current_pid(),
            !nameUnlinked.exchange(true, ordering: .acquiringAndReleasing)
        {
            try? Syscall.shmUnlink(name)  // ENOENT: removed already. The name is ours either way.
            ResourceTracker.shared.unregister(name)
        }
    }

    private static func validated(_ name: String) throws(SharedMemoryError) -> String {
        let bare = name.hasPrefix("/") ? String(name.dropFirst()) : name
        guard !bare.isEmpty, bare.utf8.count <= 250, !bare.contains("/"), !bare.contains("\0") else {
            throw .invalidName(name)
        }
        return "/" + bare
    }

    private enum CodingKeys: String, CodingKey { case descriptor, size, name }

    /// Encodes the segment's descriptor (it travels beside the message) and its size. Works only
    /// inside a task given to a child or a message sent over a ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws {
        guard let attachments = encoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Outgoing
        else {
            throw DescriptorTransfer.notTransferable("SharedMemory", encoder.codingPath)
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        // The receiver gets its own copy of the descriptor; ours stays open until sent.
        try container.encode(
            attachments.attach(fd, afterSend: { withExtendedLifetime(self) {} }), forKey: .descriptor)
        try container.encode(size, forKey: .size)
        try container.encodeIfPresent(name, forKey: .name)
    }

    /// Maps the descriptor that arrived with the message. The receiver never owns the name.
    public convenience init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let index = try container.decode(Int.self, forKey: .descriptor)
        let size = try container.decode(Int.self, forKey: .size)
        let name = try container.decodeIfPresent(String.self, forKey: .name)
        guard let incoming = decoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Incoming,
            let fd = incoming.take(index)
        else {
            throw DescriptorTransfer.missing("SharedMemory", decoder.codingPath)
        }
        let actual: Int
        do throws(SystemError) {
            actual = try Syscall.fileSize(fd)
        } catch {
            Syscall.close(fd)
            throw SharedMemoryError.system(error)
        }
        guard size > 0, actual >= size else {
            Syscall.close(fd)
            throw SharedMemoryError.invalidSize(size)
        }
        try self.init(fd: fd, size: size, name: name, isCreator: false, lifetime: .untilUnlinked)
    }
}
