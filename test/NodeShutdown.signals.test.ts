// Real signals against real child processes, one fixture per scenario. Each
// asserts the exit code, the order of the output and generous time bounds.
import { assert, describe, it } from "@effect/vitest"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { ChildProcess } from "../src/testing/index.ts"
import { reportFromOutput, stepNamed } from "./support/report.ts"

const fixture = (name: string) => path.join(import.meta.dirname, "fixtures", `${name}.ts`)

/** Assert that every needle appears in `output`, in this order. */
const assertOrder = (output: string, needles: ReadonlyArray<string>) => {
  let at = -1
  for (const needle of needles) {
    const next = output.indexOf(needle, at + 1)
    assert.isAbove(next, at, `expected "${needle}" after position ${at} in:\n${output}`)
    at = next
  }
}

/** Start a fixture, wait until it is ready, send one signal, and wait for its exit. */
const signalWhenReady = async (name: string, signal: NodeJS.Signals, env?: Record<string, string>) => {
  const child = ChildProcess.spawn(fixture(name), env === undefined ? {} : { env })
  await child.waitFor("ready")
  child.signal(signal)
  return child.exited
}

const sequence = [
  "shutting down: signal",
  "stopAccepting 1/1 \"close listener\" done",
  "requests drained",
  "drain 2/2 \"drain requests\" done",
  "db closed",
  "cleanup 1/1 \"finalizer #1\" done",
  "metrics flushed",
  "flush 1/1 \"flush metrics\" done",
  "shutdown complete"
]

describe("signals in a child process", { concurrent: true }, () => {
  it("SIGTERM: every phase in order, exit 0, promptly", async () => {
    const exit = await signalWhenReady("sigterm", "SIGTERM")
    assert.strictEqual(exit.code, 0, exit.output)
    assertOrder(exit.output, ["db open", "ready", ...sequence])
    assert.isBelow(exit.elapsedMs, 5000)
  })

  it("SIGINT with WINDDOWN_SIGNAL_EXIT=conventional exits 130", async () => {
    const exit = await signalWhenReady("sigterm", "SIGINT", { WINDDOWN_SIGNAL_EXIT: "conventional" })
    assert.strictEqual(exit.code, 130, exit.output)
    assertOrder(exit.output, ["shutting down: signal SIGINT", ...sequence.slice(1)])
  })

  it("SIGTERM with WINDDOWN_SIGNAL_EXIT=conventional exits 143", async () => {
    assert.strictEqual((await signalWhenReady("sigterm", "SIGTERM", { WINDDOWN_SIGNAL_EXIT: "conventional" })).code, 143)
  })

  it("a bad environment variable fails at startup, naming it", async () => {
    const child = ChildProcess.spawn(fixture("sigterm"), { env: { WINDDOWN_TIMEOUT: "soon" } })
    const exit = await child.exited
    assert.strictEqual(exit.code, 1)
    assert.include(exit.output, `WINDDOWN_TIMEOUT="soon": expected a duration with a unit`)
    assert.notInclude(exit.output, "ready")
  })

  it("an impossible budget fails at startup with the numbers", async () => {
    const child = ChildProcess.spawn(fixture("sigterm"), { env: { WINDDOWN_TIMEOUT: "3s", WINDDOWN_CLEANUP: "5s" } })
    const exit = await child.exited
    assert.strictEqual(exit.code, 1)
    assert.include(exit.output, "cleanup 5 s")
    assert.include(exit.output, "leaves nothing of the 3 s timeout for drain")
  })

  it("two signals: the drain is interrupted (checkpoint runs), cleanup still runs, exit 125", async () => {
    const child = ChildProcess.spawn(fixture("two_signals"))
    await child.waitFor("ready")
    child.signal("SIGTERM")
    await child.waitFor("draining")
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 125, exit.output)
    assertOrder(exit.output, ["draining", "forcing shutdown", "job checkpointed", "\"endless job\" interrupted", "db closed", "forced by SIGTERM"])
    assert.isBelow(exit.elapsedMs, 10_000)
  })

  it("the same signal twice within repeatWindow counts once: Ctrl+C reaching node directly and through npm", async () => {
    // A wide window, so the two copies count once however late a loaded machine delivers the second.
    const child = ChildProcess.spawn(fixture("sigterm"), { env: { REPEAT_WINDOW: "5 seconds" } })
    await child.waitFor("ready")
    child.signal("SIGINT")
    await sleep(20) // two deliveries, as npm's forwarded copy arrives a few ms after the terminal's
    child.signal("SIGINT")
    const exit = await child.exited
    assert.strictEqual(exit.code, 0, exit.output)
    assert.notInclude(exit.output, "forcing shutdown")
    assertOrder(exit.output, ["shutting down: signal SIGINT", "shutdown complete"])
  })

  it("three signals: exits at once with 128 + signal while cleanup hangs", async () => {
    const child = ChildProcess.spawn(fixture("three_signals"))
    await child.waitFor("ready")
    child.signal("SIGTERM")
    await child.waitFor("cleanup stuck")
    child.signal("SIGINT")
    await child.waitFor("forcing shutdown")
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 143, exit.output)
    assertOrder(exit.output, ["cleanup stuck", "forcing shutdown", "(signal 3): exiting now"])
    assert.isBelow(exit.elapsedMs, 10_000)
  })

  it("a finalizer that hangs forever: abandoned at its allowance, the rest runs, the process ends by the deadline with 124", async () => {
    const exit = await signalWhenReady("hung_finalizer", "SIGTERM")
    assert.strictEqual(exit.code, 124, exit.output)
    assertOrder(exit.output, ["finalizer hangs", "\"main program\" timed out", "shutdown complete", "still alive", "drain \"main program\""])
    const report = reportFromOutput(exit.output)
    assert.strictEqual(stepNamed(report, "main program").outcome, "timedOut")
    assert.isTrue(stepNamed(report, "main program").leftRunning)
    // By the hard deadline (2 s), with generous slack for a loaded machine's process start and exit.
    assert.isBelow(exit.elapsedMs, 2000 + 3000)
  })

  it("a failing step is logged with its cause and the next steps still run; the report is one JSON line", async () => {
    const exit = await signalWhenReady("failing_step", "SIGTERM")
    assert.strictEqual(exit.code, 0, exit.output)
    assertOrder(exit.output, [
      "queue closed",
      "cleanup 1/3 \"close queue\" done",
      "cleanup 2/3 \"upload logs\" failed",
      "bucket unreachable",
      "cache closed",
      "cleanup 3/3 \"close cache\" done"
    ])
    // The report is one line any log pipeline parses as JSON, and reads back through its Schema.
    const line = exit.output.split("\n").find((l) => l.includes(`"event":"winddown.report"`))
    assert.isDefined(line, exit.output)
    assert.strictEqual(JSON.parse(line!).event, "winddown.report")
    const report = reportFromOutput(exit.output)
    assert.deepStrictEqual(report.reason, { _tag: "signal", signal: "SIGTERM" })
    assert.strictEqual(report.exitCode, 0)
    assert.strictEqual(stepNamed(report, "upload logs").outcome, "failed")
  })

  it("a signal during startup releases what was acquired and exits 0 without starting the program", async () => {
    const child = ChildProcess.spawn(fixture("startup_signal"))
    await child.waitFor("warming cache")
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 0, exit.output)
    assertOrder(exit.output, ["warming cache", "shutting down: signal SIGTERM", "db closed", "shutdown complete"])
    assert.notInclude(exit.output, "cache warm")
    assert.notInclude(exit.output, "ready")
    assert.isBelow(exit.elapsedMs, 4000)
  })

  it("an uncaught exception becomes an orderly shutdown that exits 1", async () => {
    const child = ChildProcess.spawn(fixture("uncaught"))
    const exit = await child.exited
    assert.strictEqual(exit.code, 1, exit.output)
    assertOrder(exit.output, ["ready", "uncaughtException: Error: callback exploded", "shutting down: uncaughtException", "db closed", "exit code 1"])
  })

  it("without runMain, a configured SIGHUP interrupts the program and the process exits 0 by itself", async () => {
    const exit = await signalWhenReady("no_runmain", "SIGHUP")
    assert.strictEqual(exit.code, 0, exit.output)
    // The program unwinds concurrently with the first phases: its line and the
    // first log line may come in either order; both come before the cleanup.
    assertOrder(exit.output, ["ready", "shutting down: signal SIGHUP", "db closed", "shutdown complete"])
    assertOrder(exit.output, ["ready", "program unwound", "db closed"])
  })

  it("reportTo logger: the report is a record of the program's JSON logger, with the fields of the steps", async () => {
    const exit = await signalWhenReady("report_logger", "SIGTERM")
    assert.strictEqual(exit.code, 0, exit.output)
    const records = exit.output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    const reportRecord = records.find((r) => r.annotations?.event === "winddown.report")
    assert.isDefined(reportRecord, exit.output)
    const report = reportFromOutput(String(reportRecord.message))
    assert.strictEqual(report.reason._tag, "signal")
    // winddown's own lines carry their fields for a JSON logger.
    const step = records.find((r) => String(r.message).includes(`"finalizer #1" done`))
    assert.strictEqual(step?.annotations?.["winddown.phase"], "cleanup")
    assert.strictEqual(step?.annotations?.["winddown.step.outcome"], "ok")
    assert.strictEqual(step?.annotations?.["winddown.step.name"], "finalizer #1")
  })
})
