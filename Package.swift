// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-multiprocessing",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Multiprocessing", targets: ["Multiprocessing"]),
        .executable(name: "mp-demo", targets: ["mp-demo"]),
        .executable(name: "mp-bench", targets: ["mp-bench"]),
        .executable(name: "mp-examples", targets: ["mp-examples"]),
    ],
    dependencies: [
        // Generic lock-free integer operations on memory we map ourselves (UnsafeAtomic).
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0")
    ],
    targets: [
        // The few things Swift cannot reach: a constructor that runs before `main`,
        // fork in a single-threaded server, SCM_RIGHTS, prctl.
        .target(name: "CMultiprocessing"),
        .target(
            name: "Multiprocessing",
            dependencies: ["CMultiprocessing", .product(name: "Atomics", package: "swift-atomics")],
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
            dependencies: ["Multiprocessing"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
