/// The key `superEncoder()` / `superDecoder()` use, as JSONEncoder does.
struct SuperCodingKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { if stringValue != "super" { return nil } }
    init?(intValue: Int) { nil }
}

/// An element position in an unkeyed container, for error paths.
struct IndexCodingKey: CodingKey {
    let index: Int
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

/// Renders a coding path as `a.b[2].c`.
func renderCodingPath(_ path: [any CodingKey]) -> String {
    var result = ""
    for key in path {
        if let index = key as? IndexCodingKey {
            result += "[\(index.index)]"
        } else {
            if !result.isEmpty { result += "." }
            result += key.stringValue
        }
    }
    return result
}
