import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, type Duration, Effect, Exit, Fiber, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Drain, ShutdownReport } from "../src/index.ts"
import { section, stepNamed, withShutdown } from "./support/report.ts"

/** 20 s budget with a 10 s drain allowance: soft deadline (0.8) at 8 s. */
const budget = { timeout: "20 seconds", drain: "10 seconds" } as const

describe("Drain: the budget", () => {
  it.effect("work in flight completes before the budget; cleanup runs only after it", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const log: Array<string> = []
        yield* shutdown.addStep("close db", Effect.sync(() => void log.push("close db")))
        for (const [name, seconds] of [["a", 2], ["b", 3]] as const) {
          yield* drain.run(Effect.sleep(`${seconds} seconds`).pipe(Effect.andThen(Effect.sync(() => void log.push(name)))))
        }
        const report = yield* runToReport({ reason: "deploy" })
        assert.deepStrictEqual(log, ["a", "b", "close db"])
        assert.strictEqual(stepNamed(report, "jobs").outcome, "ok")
        assert.strictEqual(stepNamed(report, "jobs").phase, "drain")
        const data = section(report, "drain jobs")
        assert.strictEqual(data.outcome, "drained")
        assert.strictEqual(data.completed, 2)
        assert.strictEqual(data.interrupted, 0)
        assert.strictEqual(data.inFlight, 0)
        assert.strictEqual(data.limitMs, 10_000)
        assert.strictEqual(data.durationMs, 3000)
      })))

  it.effect("a unit is not cut when its caller is interrupted (e.g. the program at shutdown start)", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("requests")
        const started = yield* Deferred.make<void>()
        const caller = yield* Effect.forkChild(
          drain.runJoin(Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep("1 second"))))
        )
        yield* Deferred.await(started)
        yield* Fiber.interrupt(caller)
        const report = yield* runToReport({ reason: "x" })
        assert.strictEqual(section(report, "drain requests").completed, 1)
      })))

  it.effect("runUnsafe, from a callback outside any fiber: the unit is drained like run's, and refused once the drain closed", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("deliveries")
        const context = yield* Effect.context<never>()
        const log: Array<string> = []
        // What a client library's delivery callback does: no fiber to yield in.
        const deliver = (id: string) =>
          drain.runUnsafe(Effect.sleep("2 seconds").pipe(Effect.andThen(Effect.sync(() => void log.push(id)))), context)
        const first = deliver("a")
        assert.isFalse(first instanceof Drain.Refused)
        const report = yield* runToReport({ reason: "deploy" })
        assert.deepStrictEqual(log, ["a"])
        assert.strictEqual(section(report, "drain deliveries").completed, 1)
        const late = deliver("b")
        assert.instanceOf(late, Drain.Refused)
        assert.strictEqual(drain.statsUnsafe().refused, 1)
      })))

  it.effect("the soft deadline reaches running work, which checkpoints and ends by itself", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const seen: Array<string> = []
        yield* drain.run(
          Effect.sleep("1 minute").pipe(
            Drain.untilWrapUp(Effect.gen(function*() {
              seen.push(`wrap-up at ${shutdown.budget.timeoutMs - shutdown.remainingMillisUnsafe()} ms`)
              yield* Effect.sleep("500 millis") // the checkpoint
              seen.push("checkpointed")
            }))
          )
        )
        // A unit polling the flag sees it too.
        yield* drain.run(Effect.gen(function*() {
          while (!(yield* Drain.isWrapUpRequested)) yield* Effect.sleep("1 second")
          seen.push("poller stopped")
        }))
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(seen, ["wrap-up at 8000 ms", "poller stopped", "checkpointed"])
        const data = section(report, "drain jobs")
        assert.strictEqual(data.wrappedUp, 2)
        assert.strictEqual(data.interrupted, 0)
        assert.strictEqual(data.softDeadlineMs, 8000)
        assert.strictEqual(data.wrapUpRequested, true)
        assert.strictEqual(data.outcome, "drained")
        assert.strictEqual(stepNamed(report, "jobs").outcome, "ok")
      })))

  it.effect("softTimeout sets the soft deadline in time from the drain's start", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs", { softTimeout: "2 seconds" })
        let at = -1
        yield* drain.run(Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          yield* Effect.sleep("1 minute").pipe(Drain.untilWrapUp(Effect.void))
          at = (yield* Clock.currentTimeMillis) - start
        }))
        const report = yield* runToReport({ reason: "x" })
        assert.strictEqual(at, 2000)
        assert.strictEqual(section(report, "drain jobs").softDeadlineMs, 2000)
      })))

  it.effect("the hard deadline interrupts what is left; its checkpoint finalizer runs before cleanup", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const log: Array<string> = []
        yield* shutdown.addStep("close db", Effect.sync(() => void log.push("close db")))
        yield* drain.run(Effect.never.pipe(Effect.onInterrupt(() =>
          Effect.sleep("200 millis").pipe(Effect.andThen(Effect.sync(() => void log.push("checkpoint"))))
        )))
        yield* drain.run(Effect.sleep("1 second").pipe(Effect.andThen(Effect.sync(() => void log.push("quick")))))
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(log, ["quick", "checkpoint", "close db"])
        const data = section(report, "drain jobs")
        assert.strictEqual(data.outcome, "timedOut")
        assert.strictEqual(data.completed, 1)
        assert.strictEqual(data.interrupted, 1)
        assert.strictEqual(stepNamed(report, "jobs").outcome, "timedOut")
        // The core measures the step up to the end of the units' finalizers.
        assert.strictEqual(stepNamed(report, "jobs").durationMs, 10_200)
      })))

  it.effect("the drain's own timeout is shorter than the phase allowance", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs", { timeout: "3 seconds" })
        yield* drain.run(Effect.never)
        const report = yield* runToReport({ reason: "x" })
        assert.strictEqual(section(report, "drain jobs").limitMs, 3000)
        assert.strictEqual(section(report, "drain jobs").softDeadlineMs, 2400)
        assert.strictEqual(stepNamed(report, "jobs").outcome, "timedOut")
        assert.strictEqual(stepNamed(report, "jobs").durationMs, 3000)
      })))
})

describe("Drain: refusing", () => {
  it.effect("work submitted after the drain started is refused with the typed error; the fallback gets it", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        yield* drain.run(Effect.sleep("5 seconds"))
        assert.isTrue(drain.isAcceptingUnsafe())
        const late = yield* Effect.forkChild(Effect.gen(function*() {
          yield* shutdown.awaitStart
          yield* Effect.sleep("1 second")
          const refused = yield* Effect.flip(drain.run(Effect.void))
          const fallback = yield* drain.runOrElse(Effect.succeed("ran"), (e) => Effect.succeed(`fallback: ${e.drain}`))
          return [refused, fallback] as const
        }))
        const report = yield* runToReport({ reason: "x" })
        const [refused, fallback] = yield* Fiber.join(late)
        assert.strictEqual(refused._tag, "DrainRefused")
        assert.strictEqual(refused.drain, "jobs")
        assert.include(refused.message, "jobs")
        assert.strictEqual(fallback, "fallback: jobs")
        const data = section(report, "drain jobs")
        assert.strictEqual(data.refused, 2)
        assert.strictEqual(data.completed, 1)
        assert.strictEqual(data.accepted, 1)
      })))

  it.effect("before the drain phase (readiness, stopAccepting) work is still accepted", () =>
    withShutdown({ ...budget, stopAccepting: "2 seconds" }, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const accepted: Array<string> = []
        yield* shutdown.addStep(
          "close listener",
          Effect.gen(function*() {
            yield* Effect.sleep("1 second")
            yield* drain.run(Effect.sleep("1 second"))
            accepted.push(yield* shutdown.status)
          }),
          { phase: "stopAccepting" }
        )
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(accepted, ["stopAccepting"])
        assert.strictEqual(section(report, "drain jobs").completed, 1)
      })))
})

describe("Drain: nesting", () => {
  it.effect("nested drains close with their parent and report separately", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const jobs = yield* Drain.make("jobs")
        const email = yield* jobs.child("email", { timeout: "2 seconds" })
        const reports = yield* jobs.child("reports")
        assert.strictEqual(email.name, "jobs/email")
        yield* jobs.run(Effect.sleep("1 second"))
        yield* email.run(Effect.sleep("1 second"))
        yield* email.run(Effect.never)
        yield* reports.run(Effect.sleep("4 seconds"))
        const report = yield* runToReport({ reason: "x" })
        const j = section(report, "drain jobs")
        const e = section(report, "drain jobs/email")
        const r = section(report, "drain jobs/reports")
        assert.deepStrictEqual([j.completed, j.interrupted, j.outcome], [1, 0, "drained"])
        assert.deepStrictEqual([e.completed, e.interrupted, e.outcome, e.limitMs], [1, 1, "timedOut", 2000])
        assert.deepStrictEqual([r.completed, r.interrupted, r.outcome], [1, 0, "drained"])
        // The parent waits for its children.
        assert.strictEqual(j.durationMs, 4000)
        assert.strictEqual(stepNamed(report, "jobs").durationMs, 4000)
        assert.isUndefined(ShutdownReport.steps(report).find((s) => s.name === "jobs/email"))
      })))

  it.effect("two drains of one Shutdown run concurrently in the drain phase", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const a = yield* Drain.make("a")
        const b = yield* Drain.make("b")
        yield* a.run(Effect.sleep("3 seconds"))
        yield* b.run(Effect.sleep("3 seconds"))
        const report = yield* runToReport({ reason: "x" })
        assert.strictEqual(report.phases.find((p) => p.phase === "drain")!.durationMs, 3000)
      })))
})

describe("Drain: escalation", () => {
  it.effect("a second signal interrupts the units at once; their finalizers still run", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const log: Array<string> = []
        yield* shutdown.addStep("close db", Effect.sync(() => void log.push("close db")))
        yield* drain.run(Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void log.push("checkpoint")))))
        yield* Effect.forkChild(Effect.gen(function*() {
          yield* shutdown.awaitStart
          yield* Effect.sleep("2 seconds")
          shutdown.forceUnsafe("SIGTERM")
        }))
        const report = yield* runToReport({ reason: "first" })
        assert.deepStrictEqual(log, ["checkpoint", "close db"])
        const data = section(report, "drain jobs")
        assert.strictEqual(data.outcome, "forced")
        assert.strictEqual(data.interrupted, 1)
        assert.strictEqual(data.durationMs, 2000)
        assert.strictEqual(report.forced?.signal, "SIGTERM")
        assert.strictEqual(stepNamed(report, "jobs").outcome, "interrupted")
      })))

  it.effect("escalation before the drain phase still interrupts the units and refuses new work", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        const log: Array<string> = []
        yield* drain.run(Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void log.push("checkpoint")))))
        shutdown.forceUnsafe("SIGTERM")
        const refused = yield* Effect.exit(drain.run(Effect.void))
        assert.isTrue(Exit.isFailure(refused))
        // It closes by itself, without waiting for its drain step.
        const stats = yield* drain.awaitClosed
        assert.deepStrictEqual([stats.outcome, stats.interrupted, stats.refused], ["forced", 1, 1])
        yield* runToReport()
        assert.deepStrictEqual(log, ["checkpoint"])
        // Not asserted: the report's section. The core interrupts drain steps
        // before they start when escalation precedes the drain phase, so the
        // report can be written before the drain's own escalation watcher ran.
      })))
})

describe("Drain: lifetime", () => {
  it.effect("closing the drain's Scope before any shutdown drains it by the same rules", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const drain = yield* Drain.make("jobs", { timeout: "5 seconds" }).pipe(Scope.provide(scope))
        yield* drain.run(Effect.sleep("1 second"))
        yield* drain.run(Effect.never)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(closing)
        const stats = yield* drain.stats
        assert.deepStrictEqual([stats.state, stats.outcome, stats.completed, stats.interrupted], ["closed", "timedOut", 1, 1])
        assert.strictEqual(stats.softDeadlineMs, 4000)
        const report = yield* runToReport({ reason: "x" })
        assert.strictEqual(stepNamed(report, "jobs").durationMs, 0)
        assert.strictEqual(section(report, "drain jobs").interrupted, 1)
      })))

  it.effect("units that fail are counted as failed and do not stop the drain", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const drain = yield* Drain.make("jobs")
        yield* drain.run(Effect.fail("nope"))
        yield* drain.run(Effect.sleep("1 second").pipe(Effect.andThen(Effect.die("kaput"))))
        yield* drain.run(Effect.sleep("1 second"))
        const report = yield* runToReport({ reason: "x" })
        const data = section(report, "drain jobs")
        assert.deepStrictEqual([data.failed, data.completed, data.accepted], [2, 1, 3])
      })))
})

describe("Drain: options", () => {
  it.effect("bad options fail construction with one line naming the option and the value", () =>
    withShutdown(budget, () =>
      Effect.gen(function*() {
        const cases: Array<[string, Drain.Options, string]> = [
          ["a", { softRatio: 0 }, "softRatio: expected a number above 0 and at most 1, got 0"],
          ["b", { softRatio: 1.5 }, "got 1.5"],
          ["c", { timeout: "-1 seconds" }, "timeout: expected a duration above zero"],
          ["d", { timeout: 0 }, "got 0"],
          ["e", { softTimeout: "1 second", softRatio: 0.5 }, "no softRatio when softTimeout is set"],
          ["f", { softTimeout: "soon" as Duration.Input }, "\"soon\""]
        ]
        for (const [name, options, message] of cases) {
          const error = yield* Effect.flip(Drain.make(name, options))
          assert.strictEqual(error._tag, "ShutdownConfigError")
          assert.include(error.message, message)
          assert.notInclude(error.stack ?? "", "\n")
        }
        const empty = yield* Effect.flip(Drain.make(""))
        assert.include(empty.message, "name")
        yield* Drain.make("jobs")
        const dup = yield* Effect.flip(Drain.make("jobs"))
        assert.strictEqual(dup._tag === "DrainError" && dup.reason, "DuplicateName")
        assert.strictEqual(Drain.defaults.softRatio, 0.8)
      })))
})

describe("Drain.waitFor", () => {
  it.effect("reports a condition met within the drain budget", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        let active = 2
        yield* Effect.forkChild(Effect.gen(function*() {
          yield* Effect.sleep("1 second")
          active--
          yield* Effect.sleep("2 seconds")
          active--
        }))
        yield* Drain.waitFor("connections idle", () => active === 0, { pollInterval: "500 millis" })
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(section(report, "wait connections idle"), { met: true, waitedMs: 3000, forced: false })
        assert.strictEqual(stepNamed(report, "connections idle").outcome, "ok")
      })))

  it.effect("a condition never met leaves the step timed out and the section says so", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const event = yield* Deferred.make<void>()
        yield* Drain.waitFor("event set", event, { timeout: "2 seconds" })
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(section(report, "wait event set"), { met: false, waitedMs: 2000, forced: false })
        assert.strictEqual(stepNamed(report, "event set").outcome, "timedOut")
      })))

  it.effect("rejects a bad poll interval", () =>
    withShutdown(budget, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Drain.waitFor("x", () => true, { pollInterval: 0 }))
        assert.include(error.message, "pollInterval")
      })))
})
