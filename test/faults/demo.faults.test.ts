/**
 * The demo's fault matrix, run against real processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { afterEach } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { lines, postJob, request, startDemo, stopAll, stopDemo, tempDir } from "../support/demo.ts"

afterEach(stopAll)

const accepted = (id: string, ms: number) => `{"t":"accepted","id":"${id}","ms":${ms},"at":1}\n`

describe("torn and corrupted journals", () => {
  for (
    const [name, head, runsOfA, badLine] of [
      ["the issue's bytes (a pending job A)", accepted("A", 5), 1, 2],
      ["a finished job A, so the acknowledged job is the first line appended", `${accepted("A", 5)}{"t":"completed","id":"A","result":"x","at":2}\n`, 0, 3]
    ] as const
  ) {
    it(`issue 12 #1, ${name}: a torn last line after invalid UTF-8 is cut by bytes; nothing appended after the repair is lost`, async () => {
      const dataDir = tempDir("faults-torn")
      const file = path.join(dataDir, "journal.jsonl")
      fs.writeFileSync(file, Buffer.concat([Buffer.from(head), Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(`{"t":"accepted","id":"T","ms":50`)]))
      const first = await startDemo(dataDir)
      const posted = await postJob(first.port, 10)
      assert.strictEqual(posted.status, 202, posted.text)
      const exit = await stopDemo(first)
      assert.strictEqual(exit.code, 0, exit.output)
      const second = await startDemo(dataDir)
      const found = await request(second.port, { path: `/jobs/${posted.json.id}` })
      assert.strictEqual(found.status, 200, `${found.text}\n${second.child.output()}`)
      const a = await request(second.port, { path: "/jobs/A" })
      assert.strictEqual(a.json.state, "done", a.text)
      assert.strictEqual(a.json.runs, runsOfA, a.text)
      // The second start sees only the line that was always bad.
      const warnings = lines(second.child.output()).filter((l) => l.includes("journal:"))
      assert.strictEqual(warnings.length, 1, warnings.join("\n"))
      assert.include(warnings[0], `skipped line ${badLine} (not valid UTF-8)`)
      await stopDemo(second)
    }, 90_000)
  }
})
