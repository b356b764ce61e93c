/**
 * The demo's fault matrix, run against real processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { holdPort, lines, postJob, request, session, stopDemo, tempDir } from "../support/demo.ts"

const racer = path.join(import.meta.dirname, "..", "fixtures", "demo_lock_racer.ts")

/** Poll `condition` every 50 ms, up to `timeoutMs`. */
const until = async (condition: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!

const accepted = (id: string, ms: number) => `{"t":"accepted","id":"${id}","ms":${ms},"at":1}\n`

describe("torn and corrupted journals", () => {
  for (
    const [name, head, runsOfA, badLine] of [
      ["the issue's bytes (a pending job A)", accepted("A", 5), 1, 2],
      ["a finished job A, so the acknowledged job is the first line appended", `${accepted("A", 5)}{"t":"completed","id":"A","result":"x","at":2}\n`, 0, 3]
    ] as const
  ) {
    it(`issue 12 #1, ${name}: a torn last line after invalid UTF-8 is cut by bytes; nothing appended after the repair is lost`, async () => {
      const { startDemo } = session()
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

describe("one instance per data directory", () => {
  it("issue 12 #2: a second instance on the same data directory refuses with one line naming it and the holder's pid (exit 75), taking no job", async () => {
    const { spawnDemo, startDemo } = session()
    const dataDir = tempDir("faults-second")
    const first = await startDemo(dataDir, { WORKERS: "1" })
    // One job runs (long), two wait in the journal: a second instance must not take them.
    for (let i = 0; i < 3; i++) assert.strictEqual((await postJob(first.port, 60_000)).status, 202)
    const journal = path.join(dataDir, "journal.jsonl")
    await until(async () => (await request(first.port, { path: "/jobs" })).json.running === 1)
    const before = fs.readFileSync(journal)
    const second = await spawnDemo({ PORT: "0", DATA_DIR: dataDir }).exited
    assert.strictEqual(second.code, 75, second.output)
    assert.strictEqual(
      second.output,
      `[demo] refused to start: DATA_DIR=${JSON.stringify(dataDir)} is in use by another instance: pid ${first.child.pid} holds ${
        path.join(dataDir, "instance.lock")
      }\n`
    )
    assert.deepStrictEqual(fs.readFileSync(journal), before)
    const exit = await stopDemo(first)
    assert.strictEqual(exit.code, 0, exit.output)
    assert.isFalse(fs.existsSync(path.join(dataDir, "instance.lock")), "the lock outlived a clean stop")
  }, 90_000)

  it("issue 12 #2: starters racing to take over a stale lock (its holder was killed): exactly one wins", async () => {
    const { spawn } = session()
    // Two rounds at once, each in its own directory, four starters each.
    await Promise.all([0, 1].map(async () => {
      const dataDir = tempDir("faults-race")
      fs.writeFileSync(path.join(dataDir, "instance.lock"), `holder ${deadPid()} 00dead00 -\n`)
      const startAt = String(Date.now() + 4_000)
      const racers = Array.from({ length: 4 }, () => spawn(racer, { env: { DATA_DIR: dataDir, START_AT: startAt } }))
      const said = await Promise.all(racers.map((r) => r.waitFor(/^(held|refused) \d+/m, 30_000)))
      const winners = said.filter((l) => l.startsWith("held"))
      assert.strictEqual(winners.length, 1, said.join("\n"))
      const winner = winners[0]!.split(" ")[1]
      for (const line of said) if (line.startsWith("refused")) assert.strictEqual(line, `refused ${winner}`)
      for (const r of racers) if (String(r.pid) === winner) r.signal("SIGTERM")
      await Promise.all(racers.map((r) => r.exited))
      assert.isFalse(fs.existsSync(path.join(dataDir, "instance.lock")))
    }))
  }, 90_000)

  it("issue 12 #2: a port in use refuses with one line naming the variable and the port (exit 75), before taking any job", async () => {
    const { spawnDemo } = session()
    const held = await holdPort()
    try {
      for (const variable of ["PORT", "HEALTH_PORT"]) {
        const dataDir = tempDir("faults-port")
        const journal = path.join(dataDir, "journal.jsonl")
        fs.writeFileSync(journal, accepted("waiting", 10))
        const env = variable === "PORT" ? { PORT: String(held.port) } : { PORT: "0", HEALTH_PORT: String(held.port) }
        const exit = await spawnDemo({ DATA_DIR: dataDir, ...env }).exited
        assert.strictEqual(exit.code, 75, exit.output)
        assert.strictEqual(
          exit.output,
          `[demo] refused to start: ${variable}="${held.port}": 127.0.0.1:${held.port} is in use by another process (EADDRINUSE)\n`
        )
        // No worker ran: the pending job was not started, and the lock is released.
        assert.strictEqual(fs.readFileSync(journal, "utf8"), accepted("waiting", 10))
        assert.deepStrictEqual(fs.readdirSync(dataDir), ["journal.jsonl"])
      }
    } finally {
      await held.close()
    }
  }, 90_000)
})
