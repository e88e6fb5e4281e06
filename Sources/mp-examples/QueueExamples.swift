// The seeds' queue programs (filled in with the area).

let queueExamples: [Example] = []
