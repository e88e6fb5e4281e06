// Benchmarks of the shared area (filled in with the area).

let sharedCatalogue: [CatalogueEntry] = []

extension PythonBaseline {
    static let sharedSnippet = #"""
        """#
}
