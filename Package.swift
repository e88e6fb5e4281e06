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
        .executable(name: "mp-bench-cluster", targets: ["mp-bench-cluster"]),
        .executable(name: "mp-examples", targets: ["mp-examples"]),
        .executable(name: "mp-queue", targets: ["mp-queue"]),
        .executable(name: "mp-cluster-demo", targets: ["mp-cluster-demo"]),
    ],
    dependencies: [
        // Only for SharedValue/SharedArray's generic integer operations (see the rule above).
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        // `Errno`: the error code every `SystemError` carries (System/Syscall.swift).
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // Observability (README, "Observability"): API-only packages whose default
        // backends do nothing; a service bootstraps the real ones (BENCHMARKS.md: their cost).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // Documentation only: `swift package generate-documentation` (Scripts/docs.sh). A command
        // plugin, so nothing of it is linked into the library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        // MultiprocessingPostgres only (the core never imports them): the PostgreSQL client, and
        // the `Service` protocol its worker conforms to.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The command line of the operations tool, mp-queue (never linked into a library).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
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
            dependencies: ["Multiprocessing", "BenchSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // mp-bench's cluster entries, in a binary of their own so that mp-bench, whose copies
        // the start entries spawn, links no SwiftNIO, Foundation or ICU.
        .executableTarget(
            name: "mp-bench-cluster",
            dependencies: ["Multiprocessing", "MultiprocessingPostgres", "BenchSupport"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // What the two benchmark binaries share.
        .target(
            name: "BenchSupport",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The operations tool: queues, workers, failed tasks; retry, cancel, purge, cleanup.
        .executableTarget(
            name: "mp-queue",
            dependencies: [
                "MultiprocessingPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Issue 11's demo: a producer and two workers as separate programs, one SIGKILLed halfway.
        .executableTarget(
            name: "mp-cluster-demo",
            dependencies: ["Multiprocessing", "MultiprocessingPostgres"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "mp-examples",
            dependencies: ["Multiprocessing"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "MultiprocessingTests",
            dependencies: [
                "Multiprocessing", "MultiprocessingTestSupport",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // A recording metrics backend both test targets share: they run in one test process,
        // where a backend can be bootstrapped only once.
        .target(
            name: "MultiprocessingTestSupport",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            path: "Tests/MultiprocessingTestSupport",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .testTarget(
            name: "MultiprocessingPostgresTests",
            dependencies: [
                "Multiprocessing", "MultiprocessingPostgres", "MultiprocessingTestSupport",
                // Built before the tests, which run the binary against a live queue.
                "mp-queue",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
