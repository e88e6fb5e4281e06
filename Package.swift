// swift-tools-version: 6.0
import PackageDescription

// Platforms: Linux is the tested platform (CI builds and tests there). The package also names
// macOS 15, the first with the standard library's `Synchronization`, and its sources compile a
// Darwin path for every Linux-only call, but that path is neither built nor tested here and does
// less: waits on shared words poll instead of sleeping on a futex, the I/O reactor uses `poll`
// instead of epoll, children get no parent-death signal, dead holders are not told from zombies,
// and crash reports carry no registers or module offsets. README, "Linux and other systems".
//
// Atomics, one rule: the standard library's `Synchronization` (`Atomic`, `Mutex`) everywhere,
// in-process state and words in mapped shared memory alike (an `UnsafeMutablePointer<Atomic<T>>`
// bound to the mapped bytes). swift-atomics only where Synchronization cannot say it: the
// integer operations of `SharedValue` and `SharedArray`, which are generic over any integer type
// (`AtomicInteger`); Synchronization offers arithmetic only on each concrete type.
let package = Package(
    name: "swift-multiprocessing",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .library(name: "MultiprocessingPostgres", targets: ["MultiprocessingPostgres"]),
        .executable(name: "mp-demo", targets: ["mp-demo"]),
        .executable(name: "mp-bench", targets: ["mp-bench"]),
        .executable(name: "mp-examples", targets: ["mp-examples"]),
    ],
    dependencies: [
        // Only for SharedValue/SharedArray's generic integer operations (see the rule above).
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        // `Errno`: the error code every `SystemError` carries (System/Syscall.swift).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // Documentation only: `swift package generate-documentation` (Scripts/docs.sh). A command
        // plugin, so nothing of it is linked into the library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // MultiprocessingPostgres only (the core never imports them): the PostgreSQL client, and
        // the `Service` protocol its worker conforms to.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The few things Swift cannot reach: a constructor that runs before `main`, fork in a
        // single-threaded server and fork-child code, SCM_RIGHTS (CMSG macros), prctl, futex and
        // other variadic `syscall`s, signal handlers.
        .target(name: "CMultiprocessing"),
        .target(
            name: "Multiprocessing",
            dependencies: [
                "CMultiprocessing",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The same pool across hosts: a task queue on PostgreSQL and the workers that serve it.
        .target(
            name: "MultiprocessingPostgres",
            dependencies: [
                "Multiprocessing",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "mp-demo",
            dependencies: ["Multiprocessing"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "mp-bench",
            dependencies: ["Multiprocessing"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "mp-examples",
            dependencies: ["Multiprocessing"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: ["Multiprocessing", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "MultiprocessingPostgresTests",
            dependencies: [
                "Multiprocessing", "MultiprocessingPostgres",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
