/**
 * 02 timeouts and budgets: the shutdown time comes from a pod spec
 * (`Budget.fromKubernetes`, its arithmetic printed at start), and every step
 * is bounded:
 *
 * - "export report" (drain) has no timeout of its own and would take 10 s: the
 *   drain phase's allowance (2.2 s here) cuts it;
 * - "flush cache" (cleanup) has `timeout: "300 millis"` and would take 2 s: it
 *   is reported `timedOut`, and "close db", the next step, still runs.
 *
 * `reportSummary: true` prints a line per phase at the end. Press Ctrl+C
 * (or `kill -TERM <pid>`); the whole shutdown stays under the 4 s budget.
 *
 *   node --import tsx examples/02_timeouts.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { Budget, Shutdown } from "winddown"
import { NodeShutdown } from "winddown/node"

// A pod with a short grace period, so the example is quick to watch.
const pod = { terminationGracePeriodSeconds: 6, preStopHook: "1 second", safetyMargin: "1 second" } as const

// An impossible pod spec would fail here with a BudgetError naming the numbers.
const ShutdownLive = Layer.unwrap(
  Effect.gen(function*() {
    const budget = yield* Budget.fromKubernetes(pod)
    yield* Effect.log(`budget: grace 6 s - preStop hook 1 s - safety margin 1 s = ${Budget.format(budget)}`)
    // The pod's preStop hook already waited: no pre-stop delay of our own.
    return NodeShutdown.layer({ timeout: budget.timeoutMs, ...budget.phasesMs, preStop: 0, reportSummary: true })
  })
)

const slow = (name: string, ms: number) =>
  Effect.log(`${name}: started, needs ${ms} ms`).pipe(
    Effect.andThen(Effect.sleep(ms)),
    Effect.andThen(Effect.log(`${name}: finished`)),
    Effect.onInterrupt(() => Effect.log(`${name}: cut short`))
  )

const program = Effect.gen(function*() {
  // Registered in this order; within cleanup they run in reverse: flush cache, then close db.
  yield* Shutdown.addStep("close db", Effect.log("db closed"))
  yield* Shutdown.addStep("flush cache", slow("flush cache", 2000), { timeout: "300 millis" })
  yield* Shutdown.addStep("export report", slow("export report", 10_000), { phase: "drain" })
  yield* Effect.log(`pid ${process.pid}: stop with Ctrl+C or kill -TERM ${process.pid}`)
  return yield* Effect.never
})

NodeRuntime.runMain(program.pipe(Effect.provide(ShutdownLive)))
