import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Jobs from "../../demo/Jobs.ts"
import * as Journal from "../../demo/Journal.ts"

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "winddown-journal-"))

const accepted = (id: string, ms = 10) => `{"t":"accepted","id":"${id}","ms":${ms},"at":1}\n`

/** Write `bytes` as the journal of a new directory, open it, append `b`, close, and open again. */
const repairAndAppend = (bytes: Buffer) =>
  Effect.gen(function*() {
    const dir = tempDir()
    const file = path.join(dir, "journal.jsonl")
    fs.writeFileSync(file, bytes)
    const journal = yield* Journal.open(dir)
    yield* journal.append({ t: "accepted", id: "b", ms: 5, at: 3 })
    yield* journal.close
    const again = yield* Journal.open(dir)
    yield* again.close
    return { first: journal, again, bytes: fs.readFileSync(file) }
  })

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
      yield* journal.append({ t: "started", id: "b", run: 1, progressMs: 0 })
      yield* journal.close
      const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n")
      assert.strictEqual(lines.length, 4)
      assert.deepStrictEqual(JSON.parse(lines[3]!), { t: "started", id: "b", run: 1, progressMs: 0 })
      const again = yield* Journal.open(dir)
      assert.deepStrictEqual(again.warnings, [])
      yield* again.close
    }))

  it.effect("issue 12 #1: after a line that is not UTF-8, the torn tail is cut at its byte offset, not a re-decoded one", () =>
    Effect.gen(function*() {
      const good = Buffer.from(accepted("a"))
      const { again, bytes } = yield* repairAndAppend(
        Buffer.concat([good, Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(`{"t":"accepted","id":"T","ms":50`)])
      )
      assert.deepStrictEqual(bytes, Buffer.concat([good, Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(`${`{"t":"accepted","id":"b","ms":5,"at":3}`}\n`)]))
      assert.deepStrictEqual(again.entries.map((e) => e.id), ["a", "b"])
      assert.strictEqual(again.warnings.length, 1)
      assert.include(again.warnings[0], "skipped line 2 (not valid UTF-8)")
    }))

  for (
    const [name, tail] of [
      ["a 2-byte character cut after its first byte", [0xc3]],
      ["a 3-byte character (€) cut after two bytes", [0xe2, 0x82]],
      ["a 4-byte character (emoji) cut after three bytes", [0xf0, 0x9f, 0x98]],
      ["a lone continuation byte", [0x80]]
    ] as const
  ) {
    it.effect(`a torn last line ending in ${name} is cut whole; the next line starts clean`, () =>
      Effect.gen(function*() {
        const good = Buffer.from(`${accepted("a")}{"t":"completed","id":"a","result":"d\u00e9j\u00e0 \u20ac \ud83d\ude00","at":2}\n`)
        const torn = Buffer.concat([Buffer.from(`{"t":"completed","id":"x","result":"worked `), Buffer.from(tail)])
        const { again, bytes, first } = yield* repairAndAppend(Buffer.concat([good, torn]))
        assert.include(first.warnings[0], `cut a torn last line of ${torn.length} bytes`)
        assert.deepStrictEqual(bytes, Buffer.concat([good, Buffer.from(`{"t":"accepted","id":"b","ms":5,"at":3}\n`)]))
        assert.deepStrictEqual(again.entries.map((e) => e.id), ["a", "a", "b"])
        assert.deepStrictEqual(again.warnings, [])
      }))
  }

  it.effect("a file that is one torn line, or empty, is fine", () =>
    Effect.gen(function*() {
      for (const content of [`{"t":"acc`, ""]) {
        const { again, bytes } = yield* repairAndAppend(Buffer.from(content))
        assert.strictEqual(bytes.toString(), `{"t":"accepted","id":"b","ms":5,"at":3}\n`)
        assert.deepStrictEqual(again.warnings, [])
      }
    }))

  it.effect("an unreadable line in the middle is skipped with a warning naming its line", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "journal.jsonl"), `${accepted("a")}not json\n\n${accepted("b")}`)
      const journal = yield* Journal.open(dir)
      assert.deepStrictEqual(journal.entries.map((e) => e.id), ["a", "b"])
      assert.deepStrictEqual(journal.warnings, [`journal: skipped line 2 (not JSON): "not json"`])
      yield* journal.close
    }))

  it.effect("issue 12 #6: entries that are not valid are skipped with their line number, never run", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const bad = [
        `{"t":"accepted","id":"banana","ms":"banana","at":1}`,
        `{"t":"accepted","id":"missing","at":1}`,
        `{"t":"accepted","id":"forever","ms":1e15,"at":1}`,
        `{"t":"accepted","id":"negative","ms":-5,"at":1}`,
        `{"t":"accepted","id":"fraction","ms":1.5,"at":1}`,
        `{"t":"exploded","id":"x"}`,
        `{"id":"no-type"}`,
        `{"t":"accepted","id":"${"x".repeat(101)}","ms":5,"at":1}`,
        `{"t":"accepted","id":"bad id!","ms":5,"at":1}`,
        `{"t":"started","id":"a","run":0,"progressMs":0}`,
        `{"t":"completed","id":"a","at":2}`,
        `[1,2,3]`,
        `"text"`,
        `null`
      ]
      fs.writeFileSync(path.join(dir, "journal.jsonl"), `${accepted("a")}${bad.join("\n")}\n`)
      const journal = yield* Journal.open(dir)
      yield* journal.close
      assert.deepStrictEqual(journal.entries.map((e) => e.id), ["a"])
      assert.strictEqual(journal.warnings.length, bad.length)
      journal.warnings.forEach((w, i) => assert.match(w, new RegExp(`^journal: skipped line ${i + 2} \\(`), w))
      assert.include(journal.warnings[0], "ms: Expected number")
      assert.include(journal.warnings[1], "ms: Missing key")
      assert.include(journal.warnings[2], "ms: expected a whole number of milliseconds from 0 to 600000")
      assert.include(journal.warnings[5], `unknown entry type "exploded"`)
      assert.isFalse(journal.warnings.some((w) => w.includes("\n")))
      // Only the valid job exists; nothing with a bad ms can reach a worker.
      assert.deepStrictEqual([...Jobs.replay(journal.entries).keys()], ["a"])
    }))

  it.effect("control characters in a skipped line are escaped in the warning", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "journal.jsonl"), `\u001b[31mred\r\u0007\n`)
      const journal = yield* Journal.open(dir)
      yield* journal.close
      assert.strictEqual(journal.warnings[0], `journal: skipped line 1 (not JSON): "\\u001b[31mred\\r\\u0007"`)
    }))

  it.effect("an entry glued after the leftover bytes of an earlier torn write (older versions) is recovered", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "journal.jsonl"), `${accepted("a")}{"{"t":"accepted","id":"glued","ms":5,"at":2}\n`)
      const journal = yield* Journal.open(dir)
      yield* journal.close
      assert.deepStrictEqual(journal.entries.map((e) => e.id), ["a", "glued"])
      assert.deepStrictEqual(journal.warnings, ["journal: line 2: recovered the entry after 2 bytes of a torn write"])
    }))

  it.effect("thousands of bad lines: twenty described, the rest counted", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "journal.jsonl"), "garbage\n".repeat(5000))
      const journal = yield* Journal.open(dir)
      yield* journal.close
      assert.strictEqual(journal.warnings.length, 21)
      assert.strictEqual(journal.warnings[20], "journal: 4980 more lines skipped or recovered (5000 in all)")
    }))

  it.effect("a journal path that is a directory, or not a regular file, fails with one line naming it", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.mkdirSync(path.join(dir, "journal.jsonl"))
      const error = yield* Effect.flip(Journal.open(dir))
      assert.strictEqual(error.message, `journal ${path.join(dir, "journal.jsonl")}: is a directory, not a file`)
      const other = tempDir()
      fs.symlinkSync("/dev/null", path.join(other, "journal.jsonl"))
      const notFile = yield* Effect.flip(Journal.open(other))
      assert.strictEqual(notFile.message, `journal ${path.join(other, "journal.jsonl")}: is not a regular file`)
    }))

  it.effect("after close, appends fail instead of throwing", () =>
    Effect.gen(function*() {
      const journal = yield* Journal.open(tempDir())
      yield* journal.close
      yield* journal.close
      const error = yield* Effect.flip(journal.append({ t: "accepted", id: "a", ms: 1, at: 1 }))
      assert.include(error.message, "closed")
      assert.isFalse(journal.healthy())
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

  it("replay: a checkpoint beyond the job's length is clamped to it", () => {
    const jobs = Jobs.replay([{ t: "accepted", id: "a", ms: 100, at: 1 }, { t: "checkpointed", id: "a", progressMs: 500 }])
    assert.strictEqual(jobs.get("a")!.progressMs, 100)
  })
})
