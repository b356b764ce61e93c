// Runs in every test file: no child process started by its tests outlives
// the file, whatever they did (see winddown/testing's ChildProcess). afterAll,
// not afterEach: tests of one file may run concurrently, and one test's end
// must not kill another's child.
import { afterAll } from "vitest"
import { ChildProcess } from "../../src/testing/index.ts"

afterAll(() => {
  ChildProcess.killAll()
})
