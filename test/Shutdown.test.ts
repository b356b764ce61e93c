import { assert, describe, it } from "@effect/vitest"
import { Cause, Data, Deferred, Effect, Exit, Fiber, Logger, Ref, Runtime, Scope } from "effect"
import { TestClock } from "effect/testing"
import { ShutdownReport } from "../src/index.ts"
import { TestShutdown } from "../src/testing/index.ts"
import { stepNamed } from "./support/report.ts"

class Boom extends Data.TaggedError("Boom")<{ readonly message: string }> {}

describe("order", () => {
  it.effect("phases run in a fixed order; within a phase, named steps and plain finalizers run in reverse registration", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make()
      const log: Array<string> = []
      const step = (name: string) => Effect.sync(() => void log.push(name))
      const cleanup = shutdown.scope("cleanup")
      yield* shutdown.addStep("db", step("db"))
      yield* shutdown.addStep("flush metrics", step("flush metrics"), { phase: "flush" })
      yield* Effect.acquireRelease(Effect.void, () => step("plain release")).pipe(Scope.provide(cleanup))
      yield* shutdown.addStep("cache", step("cache"))
      yield* shutdown.addStep("close listener", step("close listener"), { phase: "stopAccepting" })
      yield* shutdown.addStep("deregister", step("deregister"), { phase: "readiness" })
      const report = yield* runToReport({ reason: "test" })
      assert.deepStrictEqual(log, ["deregister", "close listener", "cache", "plain release", "db", "flush metrics"])
      assert.deepStrictEqual(report.reason, { _tag: "manual", message: "test" })
      assert.strictEqual(report.exitCode, 0)
      assert.isTrue(ShutdownReport.isClean(report))
      assert.deepStrictEqual(report.phases.map((p) => p.phase), ["readiness", "preStop", "stopAccepting", "drain", "cleanup", "flush"])
      assert.strictEqual(stepNamed(report, "finalizer #2").phase, "cleanup")
    }))

  it.effect("a phase does not start before the previous one ended", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds" })
      const drainDone = yield* Deferred.make<void>()
      const seen = yield* Ref.make<Array<string>>([])
      yield* shutdown.addStep(
        "requests",
        Effect.sleep("3 seconds").pipe(Effect.andThen(Deferred.succeed(drainDone, undefined))),
        { phase: "drain" }
      )
      yield* shutdown.addStep("db pool", Effect.flatMap(Deferred.isDone(drainDone), (done) => Ref.update(seen, (a) => [...a, `drained=${done}`])))
      const report = yield* runToReport({ reason: "deploy" })
      assert.deepStrictEqual(yield* Ref.get(seen), ["drained=true"])
      assert.strictEqual(stepNamed(report, "requests").outcome, "ok")
      assert.isAtLeast(stepNamed(report, "requests").durationMs, 3000)
    }))

  it.effect("drain-phase steps run concurrently", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds" })
      yield* shutdown.addStep("http", Effect.sleep("2 seconds"), { phase: "drain" })
      yield* shutdown.addStep("jobs", Effect.sleep("2 seconds"), { phase: "drain" })
      const report = yield* runToReport({ reason: "x" })
      const drain = report.phases.find((p) => p.phase === "drain")!
      assert.isBelow(drain.durationMs, 3000)
      assert.strictEqual(drain.steps.length, 3) // main program + 2
    }))
})

describe("bounds", () => {
  it.effect("a step past its timeout is timed out and the next step still runs", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds" })
      const ran = yield* Ref.make(false)
      yield* shutdown.addStep("after", Ref.set(ran, true))
      yield* shutdown.addStep("slow", Effect.sleep("10 seconds"), { timeout: "1 second" })
      const report = yield* runToReport({ reason: "x" })
      const slow = stepNamed(report, "slow")
      assert.strictEqual(slow.outcome, "timedOut")
      assert.strictEqual(slow.durationMs, 1000)
      assert.isTrue(yield* Ref.get(ran))
      assert.strictEqual(stepNamed(report, "after").outcome, "ok")
    }))

  it.effect("a step hung in an uninterruptible region is abandoned at its timeout", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds" })
      yield* shutdown.addStep("after", Effect.void)
      yield* shutdown.addStep("hung", Effect.uninterruptible(Effect.never), { timeout: "2 seconds" })
      const report = yield* runToReport({ reason: "x" })
      assert.strictEqual(stepNamed(report, "hung").outcome, "timedOut")
      assert.strictEqual(stepNamed(report, "after").outcome, "ok")
      assert.isAtMost(report.durationMs, report.timeoutMs)
    }))

  it.effect("failing and dying steps are reported with their cause; the rest still run", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make()
      yield* shutdown.addStep("healthy", Effect.void)
      yield* shutdown.addStep("dies", Effect.die(new Error("kaput")))
      yield* shutdown.addStep("fails", Effect.fail(new Boom({ message: "disk full" })))
      const report = yield* runToReport({ reason: "x" })
      assert.deepStrictEqual(
        ShutdownReport.steps(report).filter((s) => s.phase === "cleanup").map((s) => [s.name, s.outcome, s.detail]),
        [["fails", "failed", "disk full"], ["dies", "failed", "kaput"], ["healthy", "ok", undefined]]
      )
      assert.isFalse(ShutdownReport.isClean(report))
    }))

  it.effect("a phase's steps share its allowance: the cleanup budget cuts the second slow step", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds", cleanup: "3 seconds" })
      yield* shutdown.addStep("second", Effect.sleep("2 seconds"))
      yield* shutdown.addStep("first", Effect.sleep("2 seconds"))
      const report = yield* runToReport({ reason: "x" })
      assert.strictEqual(stepNamed(report, "first").outcome, "ok")
      assert.strictEqual(stepNamed(report, "second").outcome, "timedOut")
      assert.strictEqual(stepNamed(report, "second").durationMs, 1000)
      const cleanup = report.phases.find((p) => p.phase === "cleanup")!
      assert.strictEqual(cleanup.outcome, "timedOut")
    }))

  it.effect("the whole sequence never exceeds the global timeout, even when every phase overruns", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "10 seconds" })
      for (const phase of ["readiness", "stopAccepting", "drain", "cleanup", "flush"] as const) {
        yield* shutdown.addStep(`${phase} hang`, Effect.never, { phase })
      }
      const report = yield* runToReport({ reason: "x" })
      assert.isAtMost(report.durationMs, 10_000)
      assert.isTrue(ShutdownReport.steps(report).filter((s) => s.name.endsWith("hang")).every((s) => s.outcome === "timedOut"))
    }))

  it.effect("an interrupted step's own finalizer (a checkpoint) runs before the sequence moves on", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "10 seconds" })
      const order: Array<string> = []
      yield* shutdown.addStep("next", Effect.sync(() => void order.push("next")))
      yield* shutdown.addStep(
        "job",
        Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void order.push("checkpoint")))),
        { timeout: "1 second" }
      )
      yield* runToReport({ reason: "x" })
      assert.deepStrictEqual(order, ["checkpoint", "next"])
    }))
})

describe("registration", () => {
  it.effect("a step with an unreadable timeout or an unknown phase is refused at registration, with the value", () =>
    Effect.gen(function*() {
      const { shutdown } = yield* TestShutdown.make()
      const defect = (effect: Effect.Effect<void>) =>
        Effect.map(Effect.exit(effect), (exit) => (Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : "no defect"))
      assert.include(yield* defect(shutdown.addStep("x", Effect.void, { timeout: "soon" as any })), `addStep "x": timeout must be a duration above zero, got "soon"`)
      assert.include(yield* defect(shutdown.addStep("x", Effect.void, { timeout: 0 })), "timeout must be a duration above zero, got 0")
      assert.include(yield* defect(shutdown.addStep("x", Effect.void, { phase: "later" as any })), `phase must be one of readiness, preStop`)
      assert.include(yield* defect(shutdown.addStep("", Effect.void)), "name must be a non-empty string")
    }))
})

describe("trigger", () => {
  it.effect("is idempotent and every step runs at most once", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make()
      const runs = yield* Ref.make(0)
      yield* shutdown.addStep("once", Ref.update(runs, (n) => n + 1))
      assert.isFalse(shutdown.isShuttingDownUnsafe())
      assert.isTrue(yield* shutdown.trigger("first"))
      assert.isFalse(yield* shutdown.trigger("second"))
      assert.isFalse(shutdown.triggerUnsafe({ _tag: "signal", signal: "SIGTERM" }))
      assert.isTrue(yield* shutdown.isShuttingDown)
      const report = yield* runToReport({ reason: "third" })
      assert.strictEqual(yield* Ref.get(runs), 1)
      assert.deepStrictEqual(report.reason, { _tag: "manual", message: "first" })
    }))

  it.effect("awaitStart completes with the reason", () =>
    Effect.gen(function*() {
      const { shutdown } = yield* TestShutdown.make()
      const waiter = yield* Effect.forkChild(shutdown.awaitStart)
      yield* Effect.yieldNow
      assert.isUndefined(waiter.pollUnsafe())
      shutdown.triggerUnsafe({ _tag: "signal", signal: "SIGTERM" })
      assert.deepStrictEqual(yield* Fiber.join(waiter), { _tag: "signal", signal: "SIGTERM" })
    }))

  it.effect("steps read the current phase and the time left", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds", cleanup: "4 seconds" })
      const seen: Array<unknown> = []
      yield* shutdown.addStep(
        "look",
        Effect.gen(function*() {
          yield* Effect.sleep("1 second")
          seen.push(yield* shutdown.status, (yield* shutdown.remaining).toJSON(), (yield* shutdown.phaseRemaining).toJSON())
        })
      )
      assert.strictEqual(yield* shutdown.status, "running")
      yield* runToReport({ reason: "x" })
      assert.strictEqual(seen[0], "cleanup")
      assert.deepStrictEqual(seen[2], { _id: "Duration", _tag: "Millis", millis: 3000 })
      assert.strictEqual(yield* shutdown.status, "done")
    }))

  it.effect("a program that ends by itself starts the shutdown with reason completed / failed", () =>
    Effect.gen(function*() {
      const ok = yield* TestShutdown.make()
      yield* ok.endProgram(Exit.void)
      const okReport = yield* ok.shutdown.awaitReport
      assert.deepStrictEqual(okReport.reason, { _tag: "completed" })
      assert.strictEqual(okReport.exitCode, 0)
      const bad = yield* TestShutdown.make()
      const error = Object.assign(new Error("boom"), { [Runtime.errorExitCode]: 3 })
      yield* bad.endProgram(Exit.die(error))
      const badReport = yield* bad.shutdown.awaitReport
      assert.deepStrictEqual(badReport.reason, { _tag: "failed", message: "boom", exitCode: 3 })
      assert.strictEqual(badReport.exitCode, 3)
    }))

  it.effect("signal exit codes: 0 by default, 128 + n when conventional", () =>
    Effect.gen(function*() {
      for (const [signalExit, signal, code] of [["success", "SIGTERM", 0], ["conventional", "SIGTERM", 143], ["conventional", "SIGINT", 130]] as const) {
        const t = yield* TestShutdown.make({ signalExit })
        t.shutdown.triggerUnsafe({ _tag: "signal", signal })
        assert.strictEqual((yield* t.runToReport()).exitCode, code)
      }
    }))

  it.effect("work that did not end cleanly turns a 0 into the code it asks for; other codes and later requests stand", () =>
    Effect.gen(function*() {
      const clean = yield* TestShutdown.make()
      clean.shutdown.triggerUnsafe({ _tag: "signal", signal: "SIGTERM" })
      clean.shutdown.requestExitCodeUnsafe(1)
      clean.shutdown.requestExitCodeUnsafe(124) // the first request wins
      assert.strictEqual((yield* clean.runToReport()).exitCode, 1)
      clean.shutdown.requestExitCodeUnsafe(7) // after the report: ignored
      assert.strictEqual(clean.shutdown.exitCodeUnsafe(), 1)
      const forced = yield* TestShutdown.make()
      forced.shutdown.forceUnsafe("SIGTERM")
      forced.shutdown.requestExitCodeUnsafe(1)
      assert.strictEqual((yield* forced.runToReport()).exitCode, 125)
    }))
})

describe("escalation", () => {
  it.effect("forcing skips the pre-stop delay, interrupts drains at once and gives later steps a short timeout", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "60 seconds", preStop: "10 seconds", cleanup: "20 seconds" })
      yield* shutdown.addStep("slow cleanup", Effect.sleep("15 seconds"))
      yield* shutdown.addStep("jobs", Effect.never, { phase: "drain" })
      shutdown.triggerUnsafe({ _tag: "signal", signal: "SIGTERM" })
      const fiber = yield* Effect.forkChild(runToReport({ step: "500 millis" }))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(shutdown.statusUnsafe(), "preStop")
      assert.isTrue(shutdown.forceUnsafe("SIGTERM"))
      assert.isFalse(shutdown.forceUnsafe("SIGTERM"))
      const report = yield* Fiber.join(fiber)
      assert.deepStrictEqual(report.forced, { signal: "SIGTERM", atMs: 2000 })
      assert.strictEqual(report.exitCode, 125)
      assert.strictEqual(report.phases.find((p) => p.phase === "preStop")!.outcome, "forced")
      assert.strictEqual(stepNamed(report, "jobs").outcome, "interrupted")
      const slow = stepNamed(report, "slow cleanup")
      assert.strictEqual(slow.outcome, "interrupted")
      assert.strictEqual(slow.durationMs, 1000)
      assert.isBelow(report.durationMs, 6000)
    }))
})

describe("escalation during the drain", () => {
  it.effect("a running drain is interrupted at once and its checkpoint finalizer runs", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "60 seconds" })
      const checkpointed = yield* Ref.make(false)
      yield* shutdown.addStep(
        "jobs",
        Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("100 millis").pipe(Effect.andThen(Ref.set(checkpointed, true))))),
        { phase: "drain" }
      )
      const fiber = yield* Effect.forkChild(runToReport({ reason: "deploy", step: "100 millis" }))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(shutdown.statusUnsafe(), "drain")
      shutdown.forceUnsafe("SIGINT")
      const report = yield* Fiber.join(fiber)
      assert.isTrue(yield* Ref.get(checkpointed))
      const jobs = stepNamed(report, "jobs")
      assert.strictEqual(jobs.outcome, "interrupted")
      assert.strictEqual(jobs.detail, "interrupted by SIGINT")
      assert.strictEqual(report.phases.find((p) => p.phase === "drain")!.outcome, "forced")
    }))
})

describe("wait", () => {
  it.effect("true when the predicate holds before the deadline, false after", () =>
    Effect.gen(function*() {
      const { shutdown } = yield* TestShutdown.make()
      let n = 3
      const fiber = yield* Effect.forkChild(shutdown.wait(() => --n <= 0, { pollInterval: "100 millis", timeout: "1 second" }))
      yield* TestClock.adjust("1 second")
      assert.isTrue(yield* Fiber.join(fiber))
      const never = yield* Effect.forkChild(shutdown.wait(() => false, { timeout: "1 second" }))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(never.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.isFalse(yield* Fiber.join(never))
    }))

  it.effect("waits on a Deferred and on an Effect condition; forcing ends every wait with false", () =>
    Effect.gen(function*() {
      const { shutdown } = yield* TestShutdown.make()
      const event = yield* Deferred.make<void>()
      const onEvent = yield* Effect.forkChild(shutdown.wait(event, { timeout: "5 seconds" }))
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(event, undefined)
      assert.isTrue(yield* Fiber.join(onEvent))
      const counter = yield* Ref.make(2)
      const zero = Effect.map(Ref.get(counter), (n) => n === 0)
      const onCounter = yield* Effect.forkChild(shutdown.wait(zero, { pollInterval: "50 millis" }))
      yield* TestClock.adjust("1 second")
      assert.isUndefined(onCounter.pollUnsafe())
      shutdown.forceUnsafe("SIGINT")
      assert.isFalse(yield* Fiber.join(onCounter))
    }))

  it.effect("inside a step, the default deadline leaves the step time to act on a false answer", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds", cleanup: "3 seconds" })
      const result = yield* Deferred.make<boolean>()
      yield* shutdown.addStep("pool drained?", Effect.flatMap(shutdown.wait(() => false), (b) => Deferred.succeed(result, b)))
      const report = yield* runToReport({ reason: "x" })
      assert.isFalse(yield* Deferred.await(result))
      assert.strictEqual(stepNamed(report, "pool drained?").outcome, "ok")
      assert.strictEqual(stepNamed(report, "pool drained?").durationMs, 2700)
    }))
})

describe("progress", () => {
  it.effect("while draining, one line per interval with what is in flight and the time left", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make(({ message }) => {
        const text = Array.isArray(message) ? message.join(" ") : String(message)
        if (text.includes("draining")) lines.push(text)
      })
      yield* Effect.gen(function*() {
        const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "20 seconds", progressInterval: "1 second" })
        let inFlight = 3
        yield* shutdown.addProgress("jobs", () => `${inFlight} in flight`)
        yield* shutdown.addProgress("quiet", () => undefined)
        yield* shutdown.addStep("jobs", Effect.sleep("2500 millis").pipe(Effect.tap(() => Effect.sync(() => void (inFlight = 0)))), {
          phase: "drain"
        })
        yield* runToReport({ reason: "x" })
      }).pipe(Effect.provide(Logger.layer([capture])))
      assert.deepStrictEqual(lines, [
        "[winddown] draining: jobs: 3 in flight (drain 10 s left, 19 s to the hard deadline)",
        "[winddown] draining: jobs: 3 in flight (drain 9 s left, 18 s to the hard deadline)"
      ])
    }))
})
