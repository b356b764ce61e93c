/**
 * 09 testing a shutdown, without a test runner (in a real suite these are
 * `it.effect` and `it.live` from @effect/vitest; see test/Shutdown.test.ts):
 *
 * a. timing rules under `TestClock`: `TestShutdown.make` builds a Shutdown
 *    without signals and `runToReport` moves the clock, so 14 s of steps take
 *    a few ms. Asserts the step order and a step timeout.
 * b. signals in a real process: `ChildProcess.spawn` runs examples/01_basic.ts,
 *    sends SIGTERM and checks the exit code and the output.
 *
 * Prints a PASS or FAIL line per check and exits 1 if any failed.
 *
 *   node --import tsx examples/09_testing.ts
 */
import { Effect, References } from "effect"
import { TestClock } from "effect/testing"
import * as assert from "node:assert/strict"
import { fileURLToPath } from "node:url"
import { ShutdownReport } from "winddown"
import { ChildProcess, TestShutdown } from "winddown/testing"

const withTestClock = Effect.gen(function*() {
  const { shutdown, runToReport } = yield* TestShutdown.make({ timeout: "20 seconds" })
  const ran: Array<string> = []
  const step = (name: string, ms: number) =>
    Effect.sleep(ms).pipe(Effect.andThen(Effect.sync(() => void ran.push(name))))
  yield* shutdown.addStep("close db", step("close db", 0))
  yield* shutdown.addStep("flush cache", step("flush cache", 10_000), { timeout: "1 second" })
  yield* shutdown.addStep("finish jobs", step("finish jobs", 3000), { phase: "drain" })
  yield* shutdown.addStep("send metrics", step("send metrics", 0), { phase: "flush" })

  const report = yield* runToReport({ reason: "test" })
  const outcome = (name: string) => ShutdownReport.steps(report).find((s) => s.name === name)?.outcome
  assert.deepEqual(ran, ["finish jobs", "close db", "send metrics"]) // flush cache never finished
  assert.equal(outcome("flush cache"), "timedOut")
  assert.equal(outcome("close db"), "ok") // the step after a timed-out one still runs
  assert.equal(report.exitCode, 0)
  assert.ok(report.durationMs >= 4000, `took ${report.durationMs} ms of test time`)
}).pipe(
  Effect.provide(TestClock.layer()),
  Effect.provideService(References.MinimumLogLevel, "None") // the steps' own log lines
)

const withChildProcess = async () => {
  const child = ChildProcess.spawn(fileURLToPath(new URL("01_basic.ts", import.meta.url)), { killAfterMs: 30_000 })
  await child.waitFor("serving as pid", 20_000)
  child.signal("SIGTERM")
  const { code, output } = await child.exited
  assert.equal(code, 0, output)
  assert.match(output, /db: closed/)
  assert.match(output, /shutdown complete in \d+ ms: 3 steps, 0 not ok, exit code 0/)
}

const checks: ReadonlyArray<readonly [string, () => Promise<void>]> = [
  ["TestClock: steps in phase order, a step timeout, the next step still runs", () => Effect.runPromise(withTestClock)],
  ["child process: SIGTERM to examples/01_basic.ts exits 0 after its cleanup", withChildProcess]
]

let failed = 0
for (const [name, check] of checks) {
  const started = performance.now()
  try {
    await check()
    console.log(`PASS ${name} (${Math.round(performance.now() - started)} ms)`)
  } catch (error) {
    failed++
    console.log(`FAIL ${name}\n${error instanceof Error ? error.message : String(error)}`)
  }
}
console.log(failed === 0 ? "all checks passed" : `${failed} of ${checks.length} checks failed`)
process.exitCode = failed === 0 ? 0 : 1
