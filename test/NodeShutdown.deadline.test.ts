// The hard deadline has no hole: once a shutdown started, the process is gone
// by the deadline whatever holds it, with the documented code and a report.
// Real child processes, real signals, generous bounds for a loaded machine.
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ChildProcess } from "../src/testing/index.ts"
import { reportFromOutput, stepNamed } from "./support/report.ts"

const fixture = (name: string) => path.join(import.meta.dirname, "fixtures", `${name}.ts`)

/** Slack for process start and exit on a loaded machine. */
const slackMs = 4000

describe("no hole in the deadline", { concurrent: true }, () => {
  for (const runMain of [true, false]) {
    it(`a program that ends by itself with a hung, timer-holding step: gone by the deadline with 124 and a report (${
      runMain ? "runMain" : "without runMain"
    })`, async () => {
      const child = ChildProcess.spawn(fixture("ends_with_hang"), { env: { RUNMAIN: runMain ? "1" : "0" } })
      await child.waitFor("work done")
      const startedAt = performance.now()
      const exit = await child.exited
      const elapsed = performance.now() - startedAt
      assert.strictEqual(exit.code, 124, exit.output)
      const report = reportFromOutput(exit.output)
      assert.strictEqual(report.reason._tag, "completed")
      const stuck = stepNamed(report, "stuck release")
      assert.strictEqual(stuck.outcome, "timedOut")
      assert.isTrue(stuck.leftRunning)
      assert.include(exit.output, `still alive (steps left running: cleanup "stuck release"`)
      assert.isBelow(elapsed, 2000 + slackMs)
    })
  }

  it("a blocked event loop past the budget: nothing more runs, the report says so, exit 124", async () => {
    const child = ChildProcess.spawn(fixture("blocked_loop"))
    await child.waitFor("ready")
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 124, exit.output)
    // Whichever notices first once the loop unblocks: the Node watchdog (its
    // timer is overdue) or the sequence before its next phase. Same outcome.
    assert.match(exit.output, /budget is spent (during drain|before cleanup)/)
    const report = reportFromOutput(exit.output)
    assert.strictEqual(report.exitCode, 124)
    assert.strictEqual(report.budgetSpent?.during, "drain")
    assert.include(["running", "timedOut"], stepNamed(report, "crunch").outcome)
    assert.deepStrictEqual(report.phases.slice(4).map((p) => p.outcome), ["notReached", "notReached"])
    assert.notInclude(exit.output, "pool closed")
    // The summary lists all six phases, the ones never reached included.
    assert.match(exit.output, /cleanup\s+0 ms of 0 ms\s+\(not reached\)/)
    assert.match(exit.output, /flush\s+0 ms of 0 ms\s+\(not reached\)/)
  })

  it("a timeout beyond Node's 24.8-day timer limit (600h) is a timeout, not an instant kill", async () => {
    const child = ChildProcess.spawn(fixture("sigterm"), { env: { WINDDOWN_TIMEOUT: "600h" } })
    await child.waitFor("ready")
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 0, exit.output)
    assert.include(exit.output, "requests drained")
    assert.notInclude(exit.output, "TimeoutOverflowWarning")
    assert.notInclude(exit.output, "hard deadline")
  })

  it("a closed stdout and stderr do not crash the service: the job in flight finishes, exit 0", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-pipe-"))
    const doneFile = path.join(dir, "done")
    try {
      const child = spawn(process.execPath, ["--import", "tsx", fixture("closed_pipe")], {
        env: { ...process.env, DONE_FILE: doneFile },
        stdio: ["ignore", "pipe", "pipe"]
      })
      const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)))
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no ready line")), 60_000)
          child.stdout!.on("data", (chunk: Buffer) => {
            if (chunk.toString().includes("ready")) {
              clearTimeout(timer)
              resolve()
            }
          })
        })
        // The reader goes away, as `| head -1` does after its line.
        child.stdout!.destroy()
        child.stderr!.destroy()
        await new Promise((resolve) => setTimeout(resolve, 300)) // let a few writes hit EPIPE
        child.kill("SIGTERM")
        assert.strictEqual(await exited, 0)
        assert.strictEqual(fs.readFileSync(doneFile, "utf8"), "done")
      } finally {
        child.kill("SIGKILL")
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
