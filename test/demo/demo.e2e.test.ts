/**
 * The demo's promise, tested from outside with real processes and signals:
 * jobs are submitted while the service is restarted at random moments; every
 * job that got a 202 is completed exactly once across SIGTERM restarts. (Across
 * SIGKILL, none is lost: test/faults/demo.faults.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import type { Entry } from "../../demo/Journal.ts"
import { ChildProcess } from "../../src/testing/index.ts"
import { isAlive } from "../support/children.ts"

const demo = path.join(import.meta.dirname, "..", "..", "demo", "main.ts")

const start = async (dataDir: string) => {
  const child = ChildProcess.spawn(demo, {
    env: { PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, WORKERS: "4", WINDDOWN_TIMEOUT: "4s" }
  })
  const line = await child.waitFor(/listening on http:\/\/localhost:\d+/, 30_000)
  const port = Number(/localhost:(\d+)/.exec(line)![1])
  return { child, base: `http://127.0.0.1:${port}` }
}

/** Post jobs until `stop` resolves; returns the ids that were acknowledged (202). */
const submitUntil = async (base: string, stop: Promise<unknown>) => {
  const acked: Array<string> = []
  let stopped = false
  void stop.then(() => (stopped = true))
  for (let i = 0; i < 400 && !stopped; i++) {
    try {
      const response = await fetch(`${base}/jobs`, {
        method: "POST",
        body: JSON.stringify({ ms: 20 + Math.floor(Math.random() * 600) }),
        headers: { "content-type": "application/json" }
      })
      if (response.status === 202) acked.push(((await response.json()) as { id: string }).id)
    } catch {
      // refused or reset while restarting: not acknowledged, so not promised
    }
    await sleep(5 + Math.random() * 25)
  }
  return acked
}

const finishAll = async (dataDir: string) => {
  const { child, base } = await start(dataDir)
  for (let i = 0; i < 200; i++) {
    const counts = (await (await fetch(`${base}/jobs`)).json()) as Record<string, number>
    if (counts.pending === 0 && counts.running === 0) break
    await sleep(100)
  }
  child.signal("SIGTERM")
  const exit = await child.exited
  assert.strictEqual(exit.code, 0, exit.output)
}

const completions = (dataDir: string) => {
  const entries: Array<Entry> = fs.readFileSync(path.join(dataDir, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
  const count = new Map<string, number>()
  for (const e of entries) if (e.t === "completed") count.set(e.id, (count.get(e.id) ?? 0) + 1)
  return count
}

describe("demo service end to end", () => {
  it("npm start: a SIGTERM sent to npm itself reaches the service, which shuts down gracefully", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-npm-start-"))
    const npm = spawn("npm", ["start", "--silent"], {
      cwd: path.join(import.meta.dirname, "..", ".."),
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    npm.stdout.on("data", (d) => (output += d))
    npm.stderr.on("data", (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => npm.on("exit", (code) => resolve(code)))
    const guard = setTimeout(() => npm.kill("SIGKILL"), 60_000)
    for (let i = 0; i < 300 && !output.includes("listening on"); i++) await sleep(100)
    const pid = Number(/\(pid (\d+)\)/.exec(output)?.[1])
    npm.kill("SIGTERM")
    const code = await exited
    clearTimeout(guard)
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100)
    assert.isFalse(isAlive(pid), `the service (pid ${pid}) outlived npm:\n${output}`)
    assert.include(output, "shutdown complete")
    assert.strictEqual(code, 0, output)
  }, 90_000)

  it("issue 12 #5: a bad setting stops it at startup with one line naming the variable, exit 78, before it listens", async () => {
    const cases = [
      [{ PORT: "abc" }, `PORT="abc": expected a whole number from 0 to 65535`],
      [{ PORT: "" }, `PORT="": expected a whole number from 0 to 65535 (it is set but empty: unset it for the default, 3000)`],
      [{ WORKERS: "0" }, `WORKERS="0": expected a whole number from 1 to 256`],
      [{ WINDDOWN_TIMEOUT: "25" }, `WINDDOWN_TIMEOUT="25": expected a duration with a unit, like 25s, 500ms or 2m`]
    ] as const
    await Promise.all(cases.map(async ([env, message]) => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-demo-bad-"))
      const exit = await ChildProcess.spawn(demo, { env: { DATA_DIR: dataDir, ...env } }).exited
      assert.strictEqual(exit.code, 78, exit.output)
      assert.strictEqual(exit.output, `[demo] refused to start: ${message}\n`)
      // Refused before it touched its data.
      assert.deepStrictEqual(fs.readdirSync(dataDir), [])
    }))
  }, 60_000)

  it("SIGTERM at random moments: every acknowledged job completes exactly once", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-demo-"))
    const acked: Array<string> = []
    const moments: Array<number> = []
    for (let cycle = 0; cycle < 4; cycle++) {
      const { child, base } = await start(dataDir)
      const moment = 300 + Math.floor(Math.random() * 1500)
      moments.push(moment)
      const exited = child.exited
      const submitting = submitUntil(base, exited)
      await sleep(moment)
      child.signal("SIGTERM")
      const exit = await exited
      acked.push(...(await submitting))
      assert.strictEqual(exit.code, 0, `cycle ${cycle} (SIGTERM at ${moment} ms):\n${exit.output}`)
      assert.include(exit.output, "shutdown complete")
    }
    await finishAll(dataDir)
    const count = completions(dataDir)
    assert.isAbove(acked.length, 20, "the test submitted too few jobs to mean anything")
    const wrong = acked.filter((id) => count.get(id) !== 1).map((id) => `${id}: ${count.get(id) ?? 0}`)
    assert.deepStrictEqual(wrong, [], `signals at ${moments.join(", ")} ms`)
  }, 180_000)
})
