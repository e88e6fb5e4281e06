// Benchmarks of the queue area (filled in with the area).

let queueCatalogue: [CatalogueEntry] = []

extension PythonBaseline {
    static let queueSnippet = #"""
        """#
}
