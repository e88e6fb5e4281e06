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
}
