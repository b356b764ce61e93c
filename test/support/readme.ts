/** The README as the tests read it: its text, and the tables between `<!-- name:start -->` and `<!-- name:end -->`. */
import { assert } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

export const readme = fs.readFileSync(path.join(import.meta.dirname, "..", "..", "README.md"), "utf8")

/** The body rows of the marked table, each as its trimmed cells. */
export const table = (marker: string) => {
  const start = readme.indexOf(`<!-- ${marker}:start -->`)
  const end = readme.indexOf(`<!-- ${marker}:end -->`)
  assert.isAbove(start, -1, `README has no ${marker} table`)
  return readme.slice(start, end).split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("|---"))
    .slice(1).map((l) => l.split("|").slice(1, -1).map((c) => c.trim()))
}
