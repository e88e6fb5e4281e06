// Each area of the library adds its entries and its CPython counterparts in a file of its own.

extension PythonBaseline {
    /// The CPython snippets of the areas beyond the core, each registering `BENCH[name]`.
    static var areaSnippets: [String] { [sharedSnippet, queueSnippet, managerSnippet, poolFiguresSnippet] }
}
