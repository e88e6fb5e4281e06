/// One chunk's results: every value (the common case, one array moved in one piece), or one
/// result per item when some failed.
enum ChunkValues<Output: Sendable>: Sendable {
    case values([Output])
    case mixed([Result<Output, any Error>])

    var count: Int {
        switch self {
        case .values(let values): values.count
        case .mixed(let results): results.count
        }
    }

    func result(at index: Int) -> Result<Output, any Error> {
        switch self {
        case .values(let values): .success(values[index])
        case .mixed(let results): results[index]
        }
    }

    var results: [Result<Output, any Error>] {
        switch self {
        case .values(let values): values.map { .success($0) }
        case .mixed(let results): results
        }
    }
}
