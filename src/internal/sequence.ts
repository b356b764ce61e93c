/**
 * The shutdown sequence: the phases in order, each bounded by its allowance,
 * then the report. It runs once, in its own fiber, from the moment the
 * shutdown starts; nothing the program's own fiber does can block it.
 */
import { Deferred, Effect, Exit } from "effect"
import * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"
import * as ShutdownReport from "../ShutdownReport.ts"
import * as Deadline from "./deadline.ts"
import { formatMillis } from "./duration.ts"
import * as Engine from "./engine.ts"
import * as Log from "./log.ts"
import { runStep } from "./runStep.ts"
import * as ScopeSteps from "./scopeSteps.ts"

/** The Exit handed to plain finalizers, as if their scope had closed normally. */
const finalizerExit = (reason: ShutdownReport.Reason): Exit.Exit<unknown, unknown> =>
  reason._tag === "completed" ? Exit.void : Exit.interrupt()

/** The program's own unwinding is work in flight: the drain phase waits for it like any other step. */
const programStep = (engine: Engine.Engine): ScopeSteps.Step => ({
  name: "main program",
  timeoutMs: undefined,
  run: () => Deferred.await(engine.programDone),
  isRunning: () => !Deferred.isDoneUnsafe(engine.programDone)
})

/**
 * While the drain runs, one line every `progressInterval` with what each
 * subsystem still has in flight and the time left, so an operator watching a
 * slow shutdown sees it move; each tick also records a sample for the report.
 */
const withProgress = <A>(engine: Engine.Engine, window: Deadline.PhaseWindow, effect: Effect.Effect<A>) => {
  const interval = engine.settings.progressIntervalMs
  if (!(interval > 0) || interval === Infinity) return effect
  const line = Effect.suspend(() => {
    Engine.sample(engine)
    const parts: Array<string> = []
    for (const [name, describe] of engine.progress) {
      const text = describe()
      if (text !== undefined) parts.push(`${name}: ${text}`)
    }
    const now = Engine.now(engine)
    const drainLeft = Math.max(0, window.deadline - now)
    const deadlineLeft = Deadline.remaining(engine, now)
    return Log.info(
      `[winddown] draining${parts.length > 0 ? `: ${parts.join("; ")}` : ""} (drain ${formatMillis(drainLeft)} left, ${
        formatMillis(deadlineLeft)
      } to the hard deadline)`,
      { "winddown.phase": "drain", "winddown.remaining_ms": Math.round(deadlineLeft) }
    )
  })
  const ticker = Effect.forever(Effect.andThen(Effect.sleep(interval), line))
  return Effect.raceFirst(effect, Effect.andThen(ticker, Effect.never))
}

/** The pre-stop delay only makes sense while others may still route traffic here. */
const delayApplies = (reason: ShutdownReport.Reason): boolean => reason._tag === "signal" || reason._tag === "manual"

const runPhase = (engine: Engine.Engine, phase: Phase.Phase, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const window = Engine.enterPhase(engine, phase)
    const taken = ScopeSteps.take(engine.scopes[phase], exit)
    const steps = phase === "drain" ? [programStep(engine), ...taken] : taken
    if (steps.length > 0 || (phase === "preStop" && window.allowanceMs > 0)) {
      yield* Log.info(
        `[winddown] ${phase}: ${steps.length} step${steps.length === 1 ? "" : "s"}, up to ${formatMillis(window.allowanceMs)}`,
        { "winddown.phase": phase, "winddown.allowance_ms": window.allowanceMs, "winddown.steps": steps.length }
      )
    }
    const run = (step: ScopeSteps.Step, i: number) => runStep(engine, window, phase, step, i + 1, steps.length, exit)
    const runAll = Phase.isConcurrent(phase)
      ? Effect.forEach(steps, run, { concurrency: "unbounded" })
      : Effect.forEach(steps, run)
    if (phase === "drain") Engine.sample(engine)
    const reports = phase === "drain" ? yield* withProgress(engine, window, runAll) : yield* runAll
    if (phase === "drain") Engine.sample(engine)
    if (phase === "preStop" && delayApplies(engine.reason!) && engine.forcedAt === undefined) {
      yield* Effect.raceFirst(
        Effect.sleep(Math.max(0, window.deadline - Engine.now(engine))),
        Deferred.await(engine.forced)
      )
    }
    const forced = engine.forcedAt !== undefined && engine.forcedAt <= Engine.now(engine) &&
      Phase.isSkippedWhenForced(phase)
    Engine.leavePhase(engine, forced ? "forced" : reports.some((s) => s.outcome === "timedOut") ? "timedOut" : "ok")
  })

/** Run every phase and publish the report. */
export const run = (engine: Engine.Engine): Effect.Effect<ShutdownReport.ShutdownReport> =>
  Effect.gen(function*() {
    const reason = yield* Deferred.await(engine.started)
    yield* Log.info(
      `[winddown] shutting down: ${ShutdownReport.describeReason(reason)} (${Budget.format(engine.budget)})`,
      {
        "winddown.reason": reason._tag,
        ...(reason._tag === "signal" ? { "winddown.signal": reason.signal } : {}),
        "winddown.timeout_ms": engine.budget.timeoutMs
      }
    )
    const exit = finalizerExit(reason)
    for (const phase of Phase.all) {
      // Past the hard deadline (the event loop was blocked, say) nothing more
      // runs: the whole never passes the budget.
      if (Deadline.remaining(engine, Engine.now(engine)) <= 0 && Deadline.hard(engine) < Engine.now(engine)) {
        Engine.spendBudget(engine)
        yield* Log.warn(`[winddown] the ${formatMillis(engine.budget.timeoutMs)} budget is spent before ${phase}: the rest is not run`, {
          "winddown.phase": phase
        })
        break
      }
      yield* runPhase(engine, phase, exit)
    }
    engine.status = "done"
    engine.exitCode = Engine.decideExitCode(engine)
    const report = Engine.snapshot(engine, engine.exitCode)
    const steps = ShutdownReport.steps(report)
    const bad = steps.filter((s) => s.outcome !== "ok").length
    yield* Log.info(
      `[winddown] shutdown complete in ${Math.round(report.durationMs)} ms: ${steps.length} steps, ${bad} not ok${
        report.forced ? `, forced by ${report.forced.signal}` : ""
      }, exit code ${report.exitCode}`,
      {
        "winddown.duration_ms": Math.round(report.durationMs),
        "winddown.steps": steps.length,
        "winddown.not_ok": bad,
        "winddown.exit_code": report.exitCode
      }
    )
    yield* Deferred.succeed(engine.report, report)
    return report
  })
