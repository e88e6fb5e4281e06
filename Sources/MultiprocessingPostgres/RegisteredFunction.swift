import Multiprocessing

/// A task type a worker may run, known by its queue name: how to decode a row's function and
/// input and submit the call to the local pool, without knowing the type at the call site.
struct RegisteredFunction: Sendable {
    /// A call submitted to the local pool.
    struct Call: Sendable {
        let cancel: @Sendable () -> Void
        /// The encoded output, or the error the call ended with.
        let outcome: @Sendable () async -> Result<[UInt8], any Error>
    }

    /// Why a call could not be submitted.
    enum Refusal: Error {
        /// The stored function or input does not decode as this type.
        case undecodable(String)
        /// The local pool refused it.
        case rejected(any Error)
    }

    let name: String
    let submit: @Sendable (ProcessPool, _ function: [UInt8], _ input: [UInt8]) -> Result<Call, Refusal>

    init<F: ProcessFunction>(_ type: F.Type) {
        name = clusterTaskName(of: type)
        submit = { pool, functionBytes, inputBytes in
            let function: F
            let input: F.Input
            do {
                function = try BinaryDecoder().decode(F.self, from: functionBytes)
                input = try BinaryDecoder().decode(F.Input.self, from: inputBytes)
            } catch {
                return .failure(.undecodable("\(error)"))
            }
            let future: PoolFuture<F.Output>
            do {
                future = try pool.submit(function, input)
            } catch {
                return .failure(.rejected(error))
            }
            return .success(
                Call(
                    cancel: { future.cancel() },
                    outcome: {
                        do {
                            let output = try await future.value
                            return .success(try BinaryEncoder().encode(output))
                        } catch {
                            return .failure(error)
                        }
                    }))
        }
    }

    /// Chunks of `type`'s inputs (``MapChunk``): the chunk runs as one job of the local pool, in
    /// one process, and its outcome is every item's. An item that failed makes the attempt fail
    /// (``ChunkItemsFailed``), so that the chunk is tried again like a single task would be.
    init<F: ProcessFunction>(chunksOf type: F.Type) {
        name = clusterChunkName(of: type)
        submit = { pool, functionBytes, inputBytes in
            let function: F
            var inputs: [F.Input] = []
            do {
                function = try BinaryDecoder().decode(F.self, from: functionBytes)
                let encoded = try BinaryDecoder().decode([[UInt8]].self, from: inputBytes)
                inputs.reserveCapacity(encoded.count)
                for (index, bytes) in encoded.enumerated() {
                    do {
                        inputs.append(try BinaryDecoder().decode(F.Input.self, from: bytes))
                    } catch {
                        throw ChunkItemUndecodable(index: index, reason: "\(error)")
                    }
                }
            } catch {
                return .failure(.undecodable("\(error)"))
            }
            let items = inputs
            let work = Task { () async -> Result<[UInt8], any Error> in
                let results: [Result<F.Output, any Error>]
                do {
                    results = try await pool.mapResults(function, over: items, chunkSize: items.count)
                } catch {
                    return .failure(error)
                }
                var outcomes: [MapChunk.Item] = []
                outcomes.reserveCapacity(results.count)
                var first: (any Error)?
                let encoder = BinaryEncoder()
                for result in results {
                    switch result {
                    case .success(let output):
                        do {
                            outcomes.append(.value(try encoder.encode(output)))
                        } catch {
                            first = first ?? error
                            outcomes.append(.error(ErrorEnvelope(error)))
                        }
                    case .failure(let error):
                        first = first ?? error
                        outcomes.append(.error(ErrorEnvelope(error)))
                    }
                }
                do {
                    let bytes = try encoder.encode(outcomes)
                    if let first { return .failure(ChunkItemsFailed(first: first, outcomes: bytes)) }
                    return .success(bytes)
                } catch {
                    return .failure(error)
                }
            }
            return .success(Call(cancel: { work.cancel() }, outcome: { await work.value }))
        }
    }
}

/// An item of a chunk that does not decode as the function's input.
struct ChunkItemUndecodable: Error, CustomStringConvertible {
    let index: Int
    let reason: String
    var description: String { "item \(index) of the chunk: \(reason)" }
}
