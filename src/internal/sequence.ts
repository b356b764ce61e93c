/**
 * The shutdown sequence: the phases in order, each bounded by its allowance,
 * then the report. It runs once, in its own fiber, from the moment the
 * shutdown starts; nothing the program's own fiber does can block it.
 */
import { Clock, Deferred, Effect, Exit } from "effect"
import * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"
import * as ShutdownReport from "../ShutdownReport.ts"
import { formatMillis } from "./duration.ts"
import { type Engine, exitCodeFor, remainingMs } from "./engine.ts"
import { runStep } from "./runStep.ts"
import * as ScopeSteps from "./scopeSteps.ts"

/** The Exit handed to plain finalizers, as if their scope had closed normally. */
const finalizerExit = (reason: ShutdownReport.Reason): Exit.Exit<unknown, unknown> =>
  reason._tag === "completed" ? Exit.void : Exit.interrupt()

/** The program's own unwinding is work in flight: the drain phase waits for it like any other step. */
const programStep = (engine: Engine): ScopeSteps.Step => ({
  name: "main program",
  timeoutMs: undefined,
  run: () => Deferred.await(engine.programDone)
})

/**
 * While the drain runs, one line every `progressInterval` with what each
 * subsystem still has in flight and the time left, so an operator watching a
 * slow shutdown sees it move.
 */
const withProgress = <A>(engine: Engine, effect: Effect.Effect<A>): Effect.Effect<A> => {
  const interval = engine.settings.progressIntervalMs
  if (!(interval > 0) || interval === Infinity) return effect
  const line = Effect.suspend(() => {
    const parts = Array.from(engine.progress, ([name, describe]) => {
      const text = describe()
      return text === undefined ? undefined : `${name}: ${text}`
    }).filter((p) => p !== undefined)
    const now = engine.clock.currentTimeMillisUnsafe()
    const drainLeft = formatMillis(Math.max(0, (engine.phaseDeadline ?? now) - now))
    const deadlineLeft = formatMillis(Math.max(0, remainingMs(engine)))
    return Effect.logInfo(
      `[winddown] draining${parts.length > 0 ? `: ${parts.join("; ")}` : ""} (drain ${drainLeft} left, ${deadlineLeft} to the hard deadline)`
    )
  })
  const ticker = Effect.forever(Effect.andThen(Effect.sleep(interval), line))
  return Effect.raceFirst(effect, Effect.andThen(ticker, Effect.never))
}

/** The pre-stop delay only makes sense while others may still route traffic here. */
const delayApplies = (reason: ShutdownReport.Reason): boolean => reason._tag === "signal" || reason._tag === "manual"

const runPhase = (engine: Engine, phase: Phase.Phase, exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function*() {
    const phaseStart = yield* Clock.currentTimeMillis
    const startMs = phaseStart - engine.startedAt!
    const allowanceMs = Budget.phaseAllowanceMs(engine.budget, phase, startMs)
    const deadline = phaseStart + allowanceMs
    engine.status = phase
    engine.phaseDeadline = deadline
    const taken = ScopeSteps.take(engine.scopes[phase], exit)
    const steps = phase === "drain" ? [programStep(engine), ...taken] : taken
    if (steps.length > 0 || (phase === "preStop" && allowanceMs > 0)) {
      yield* Effect.logInfo(
        `[winddown] ${phase}: ${steps.length} step${steps.length === 1 ? "" : "s"}, up to ${formatMillis(allowanceMs)}`
      )
    }
    const run = (step: ScopeSteps.Step, i: number) => runStep(engine, phase, step, i + 1, steps.length, deadline, exit)
    const runAll = Phase.isConcurrent(phase)
      ? Effect.forEach(steps, run, { concurrency: "unbounded" })
      : Effect.forEach(steps, run)
    const reports = phase === "drain" ? yield* withProgress(engine, runAll) : yield* runAll
    if (phase === "preStop" && delayApplies(engine.reason!) && engine.forcedAt === undefined) {
      yield* Effect.raceFirst(
        Effect.sleep(Math.max(0, deadline - (yield* Clock.currentTimeMillis))),
        Deferred.await(engine.forced)
      )
    }
    const end = yield* Clock.currentTimeMillis
    const forced = engine.forcedAt !== undefined && engine.forcedAt <= end && Phase.isSkippedWhenForced(phase)
    const report: ShutdownReport.PhaseReport = {
      phase,
      startMs,
      durationMs: end - phaseStart,
      allowanceMs,
      outcome: forced ? "forced" : reports.some((s) => s.outcome === "timedOut") ? "timedOut" : "ok",
      steps: reports
    }
    return report
  })

/** Run every phase and publish the report. */
export const run = (engine: Engine): Effect.Effect<ShutdownReport.ShutdownReport> =>
  Effect.gen(function*() {
    const reason = yield* Deferred.await(engine.started)
    yield* Effect.logInfo(
      `[winddown] shutting down: ${ShutdownReport.describeReason(reason)} (${Budget.format(engine.budget)})`
    )
    const exit = finalizerExit(reason)
    const phases: Array<ShutdownReport.PhaseReport> = []
    for (const phase of Phase.all) {
      phases.push(yield* runPhase(engine, phase, exit))
    }
    engine.status = "done"
    engine.phaseDeadline = undefined
    const end = yield* Clock.currentTimeMillis
    const report: ShutdownReport.ShutdownReport = {
      reason,
      startedAt: engine.startedAt!,
      durationMs: end - engine.startedAt!,
      timeoutMs: engine.budget.timeoutMs,
      phases,
      ...(engine.forcedAt === undefined ? {} : {
        forced: { signal: engine.forcedSignal ?? "escalation", atMs: engine.forcedAt - engine.startedAt! }
      }),
      sections: Array.from(engine.sections, ([name, data]) => ({ name, data: data() })),
      exitCode: exitCodeFor(engine)
    }
    const steps = ShutdownReport.steps(report)
    const bad = steps.filter((s) => s.outcome !== "ok").length
    yield* Effect.logInfo(
      `[winddown] shutdown complete in ${Math.round(report.durationMs)} ms: ${steps.length} steps, ${bad} not ok${
        report.forced ? `, forced by ${report.forced.signal}` : ""
      }, exit code ${report.exitCode}`
    )
    yield* Deferred.succeed(engine.report, report)
    return report
  })
