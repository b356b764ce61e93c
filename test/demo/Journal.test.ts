import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Jobs from "../../demo/Jobs.ts"
import * as Journal from "../../demo/Journal.ts"

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "winddown-journal-"))

describe("demo journal", () => {
  it.effect("a torn last line (power cut) is cut off with a warning; the rest replays", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = path.join(dir, "journal.jsonl")
      fs.writeFileSync(
        file,
        `{"t":"accepted","id":"a","ms":10,"at":1}\n{"t":"completed","id":"a","result":"x","at":2}\n{"t":"accepted","id":"b","ms":5,"at":3}\n{"t":"started","id":"b","ru`
      )
      const journal = yield* Journal.open(dir)
      assert.strictEqual(journal.entries.length, 3)
      assert.strictEqual(journal.warnings.length, 1)
      assert.include(journal.warnings[0], "cut a torn last line of 27 bytes")
      journal.append({ t: "started", id: "b", run: 1, progressMs: 0 })
      yield* journal.close
      const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n")
      assert.strictEqual(lines.length, 4)
      assert.deepStrictEqual(JSON.parse(lines[3]!), { t: "started", id: "b", run: 1, progressMs: 0 })
      const again = yield* Journal.open(dir)
      assert.deepStrictEqual(again.warnings, [])
      yield* again.close
    }))

  it.effect("an unreadable line in the middle is skipped with a warning", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "journal.jsonl"), `{"t":"accepted","id":"a","ms":10,"at":1}\nnot json\n{"t":"accepted","id":"b","ms":5,"at":3}\n`)
      const journal = yield* Journal.open(dir)
      assert.deepStrictEqual(journal.entries.map((e) => e.id), ["a", "b"])
      assert.include(journal.warnings[0], "skipped unreadable line 2")
      yield* journal.close
    }))

  it("replay: a job running when the process died is pending again, with its last checkpoint", () => {
    const jobs = Jobs.replay([
      { t: "accepted", id: "a", ms: 100, at: 1 },
      { t: "started", id: "a", run: 1, progressMs: 0 },
      { t: "checkpointed", id: "a", progressMs: 40 },
      { t: "started", id: "a", run: 2, progressMs: 40 },
      { t: "accepted", id: "b", ms: 10, at: 2 },
      { t: "started", id: "b", run: 1, progressMs: 0 },
      { t: "completed", id: "b", result: "worked 10 ms", at: 3 }
    ])
    assert.deepStrictEqual(
      { state: jobs.get("a")!.state, progressMs: jobs.get("a")!.progressMs, runs: jobs.get("a")!.runs },
      { state: "pending", progressMs: 40, runs: 2 }
    )
    assert.deepStrictEqual({ state: jobs.get("b")!.state, completions: jobs.get("b")!.completions }, { state: "done", completions: 1 })
  })
})
