// The seeds' shared programs (filled in with the area).

let sharedExamples: [Example] = []
