/// A batch of one job whose input was encoded when it was submitted: a call (`submit`,
/// `apply`) or one chunk of a streaming map.
final class SingleJobBatch<Output: Codable & Sendable>: JobBatch, @unchecked Sendable {
    private let input: [UInt8]
    private let count: Int
    private let jobLabel: JobLabel
    private let completion: @Sendable (Result<ChunkValues<Output>, any Error>) -> Void

    /// `input` is the encoded `[Input]` of `count` items.
    init(
        core: PoolCore, function: InstalledFunction, input: [UInt8], count: Int, label: JobLabel,
        completion: @escaping @Sendable (Result<ChunkValues<Output>, any Error>) -> Void
    ) {
        self.input = input
        self.count = count
        self.jobLabel = label
        self.completion = completion
        super.init(core: core, function: function)
    }

    /// The batch's job.
    func makeJob() -> PoolJob { PoolJob(id: core.newJobIDs(1), batch: self, index: 0) }

    override func itemCount(_ index: Int) -> Int { count }

    override func label(_ index: Int) -> String { jobLabel.description }

    override func itemLabel(_ index: Int, _ position: Int) -> String {
        if case .items(let start, _) = jobLabel { return "#\(start + position)" }
        return "\(jobLabel) item \(position)"
    }

    override func appendInputs(of jobs: ArraySlice<PoolJob>, to frame: inout [UInt8]) throws(CodecError) {
        // A run holds jobs of one batch, and this batch has one job.
        precondition(jobs.count == 1, "a single-job batch in a run of \(jobs.count)")
        frame.append(contentsOf: input)
    }

    override func deliver(_ run: ResultRun) {
        for (position, entry) in run.entries.enumerated() where entry.claimed {
            completion(JobDecoding.answer(run, position, itemCount: count, as: Output.self))
        }
    }

    override func fail(_ index: Int, _ error: any Error) { completion(.failure(error)) }

    override func partialResults(_ payload: [UInt8], _ blob: Range<Int>) throws -> [Result<
        any Sendable, any Error
    >?] {
        try JobDecoding.partial(payload, blob, as: Output.self)
    }
}

/// Reading workers' answers, shared by the batch kinds.
enum JobDecoding {
    /// Every output of the run's `values` entries, checked against the item count they need.
    static func values<Output: Decodable>(_ run: ResultRun, expected: Int, as: Output.Type) -> Result<
        [Output], any Error
    > {
        guard let range = run.values else {
            return .failure(PoolError.protocolError("no values in a run that needs \(expected)"))
        }
        do {
            let values = try decode([Output].self, run.payload, range)
            guard values.count == expected else {
                throw PoolError.protocolError("\(values.count) results for \(expected) inputs")
            }
            return .success(values)
        } catch {
            return .failure(error)
        }
    }

    /// Entry `position`'s answer when it is the run's only `values` entry, or not one.
    static func answer<Output: Codable>(_ run: ResultRun, _ position: Int, itemCount: Int, as: Output.Type)
        -> Result<ChunkValues<Output>, any Error>
    {
        let entry = run.entries[position]
        if let override = entry.override { return .failure(override) }
        let result =
            entry.status == .values
            ? values(run, expected: itemCount, as: Output.self).map { ChunkValues.values($0) }
            : other(entry.status, run.payload, entry.blob, as: Output.self)
        return applying(entry.itemOverrides, to: result)
    }

    /// A job's answer with the results the pool already had for some items put in their places.
    static func applying<Output>(
        _ overrides: [Int: Result<any Sendable, any Error>], to result: Result<ChunkValues<Output>, any Error>
    ) -> Result<ChunkValues<Output>, any Error> {
        guard !overrides.isEmpty, case .success(let chunk) = result else { return result }
        var results = chunk.results
        for (position, settled) in overrides where position < results.count {
            results[position] = settled.flatMap { value in
                guard let value = value as? Output else {
                    return .failure(PoolError.protocolError("an item's early answer has the wrong type"))
                }
                return .success(value)
            }
        }
        return .success(.mixed(results))
    }

    /// Decodes a partial answer (see ``PoolWire/Status/partial``).
    static func partial<Output: Codable & Sendable>(
        _ payload: [UInt8], _ blob: Range<Int>, as: Output.Type
    ) throws -> [Result<any Sendable, any Error>?] {
        try decode([ItemOutcome<Output>].self, payload, blob).map { outcome in
            switch outcome {
            case .value(let value): .success(value)
            case .error(let report): .failure(report.rethrowable)
            case .skipped: nil
            }
        }
    }

    /// A job's answer when not every item succeeded: one result per item, or the job's error.
    static func other<Output: Codable>(
        _ status: PoolWire.Status, _ payload: [UInt8], _ blob: Range<Int>, as: Output.Type
    ) -> Result<ChunkValues<Output>, any Error> {
        do {
            switch status {
            case .values:
                return .success(.values(try decode([Output].self, payload, blob)))
            case .mixed:
                let outcomes = try decode([ItemOutcome<Output>].self, payload, blob)
                return .success(
                    .mixed(
                        outcomes.map { outcome in
                            switch outcome {
                            case .value(let value): .success(value)
                            case .error(let report): .failure(report.rethrowable)
                            case .skipped: .failure(SkippedItem())
                            }
                        }))
            case .failed:
                return .failure(try decode(ErrorReport.self, payload, blob).rethrowable)
            case .partial:
                return .failure(PoolError.protocolError("a partial answer where a whole one belongs"))
            }
        } catch {
            return .failure(error)
        }
    }

    /// Decodes the bytes `range` of `payload`; a codec failure becomes a ``ProcessError``.
    static func decode<T: Decodable>(_ type: T.Type, _ payload: [UInt8], _ range: Range<Int>) throws -> T {
        let result = payload.withUnsafeBytes { raw in
            Result { () throws(CodecError) -> T in
                try BinaryDecoder().decode(T.self, from: UnsafeRawBufferPointer(rebasing: raw[range]))
            }
        }
        do {
            return try result.get()
        } catch {
            throw ProcessError.codec(error)
        }
    }
}
