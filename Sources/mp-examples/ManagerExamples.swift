// The seeds' manager programs (filled in with the area).

let managerExamples: [Example] = []
