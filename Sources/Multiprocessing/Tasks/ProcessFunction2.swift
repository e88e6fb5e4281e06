/// A function of two arguments, for maps over pairs: what CPython's `starmap` does.
///
/// ```swift
/// struct Power: ProcessFunction2 {
///     func callAsFunction(_ base: Double, _ exponent: Double) async throws -> Double { pow(base, exponent) }
/// }
/// let values = try await pool.map(Power(), over: zip(bases, exponents))
/// ```
///
/// For more arguments, make a ``ProcessFunction``'s `Input` a `Codable` struct of them.
public protocol ProcessFunction2: Codable, Sendable {
    /// The first argument.
    associatedtype First: Codable & Sendable
    /// The second argument.
    associatedtype Second: Codable & Sendable
    /// One call's result.
    associatedtype Output: Codable & Sendable

    /// Computes one result, in a worker process.
    func callAsFunction(_ first: First, _ second: Second) async throws -> Output
}

/// Two arguments travelling as one input.
public struct ArgumentPair<First: Codable & Sendable, Second: Codable & Sendable>: Codable, Sendable {
    /// The first argument.
    public var first: First
    /// The second argument.
    public var second: Second

    /// Pairs two arguments.
    public init(_ first: First, _ second: Second) {
        self.first = first
        self.second = second
    }
}

/// Runs a ``ProcessFunction2`` as a ``ProcessFunction`` over ``ArgumentPair``s. A generic type
/// the child resolves by its mangled name like any other.
struct Spread2<Function: ProcessFunction2>: ProcessFunction {
    var function: Function

    func callAsFunction(_ pair: ArgumentPair<Function.First, Function.Second>) async throws -> Function.Output
    {
        try await function(pair.first, pair.second)
    }
}

extension ProcessPool {
    /// Runs `function(first, second)` in a worker.
    public func apply<F: ProcessFunction2>(_ function: F, _ first: F.First, _ second: F.Second) async throws
        -> F.Output
    {
        try await apply(Spread2(function: function), ArgumentPair(first, second))
    }

    /// `function` over pairs of arguments, results in order: CPython's `starmap`.
    public func map<F: ProcessFunction2, Pairs: Sequence>(
        _ function: F, over pairs: Pairs, chunkSize: Int? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) async throws -> [F.Output] where Pairs.Element == (F.First, F.Second) {
        try await map(
            Spread2(function: function), over: pairs.map { ArgumentPair($0.0, $0.1) }, chunkSize: chunkSize,
            progress: progress)
    }
}
