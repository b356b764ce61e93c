/**
 * The shutdown sequence: the phases in order, each bounded by its allowance,
 * then the report. It runs once, in its own fiber, from the moment the
 * shutdown starts; nothing the program's own fiber does can block it.
 */
import { Deferred, Effect, Exit, Metric } from "effect"
import * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"
import * as ShutdownMetrics from "../ShutdownMetrics.ts"
import * as ShutdownReport from "../ShutdownReport.ts"
import * as Deadline from "./deadline.ts"
import { formatMillis } from "./duration.ts"
import * as Engine from "./engine.ts"
import * as Log from "./log.ts"
import { runStep } from "./runStep.ts"
import * as ScopeSteps from "./scopeSteps.ts"
import * as Trace from "./trace.ts"

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
    return Effect.andThen(recordInFlight(engine), logProgress(engine, window))
  })
  const ticker = Effect.forever(Effect.andThen(Effect.sleep(interval), line))
  return Effect.raceFirst(effect, Effect.andThen(ticker, Effect.never))
}

/** The in-flight gauge of each subsystem, from the last sample. */
const recordInFlight = (engine: Engine.Engine): Effect.Effect<void> =>
  Effect.suspend(() => {
    const last = engine.samples[engine.samples.length - 1]
    if (last === undefined) return Effect.void
    return Effect.forEach(
      Object.entries(last.inFlight),
      ([name, n]) => Metric.update(ShutdownMetrics.series("winddown.drain.in_flight", { "winddown.drain": name }), n),
      { discard: true }
    )
  })

const logProgress = (engine: Engine.Engine, window: Deadline.PhaseWindow): Effect.Effect<void> =>
  Effect.suspend(() => {
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
    // Decided once for the phase: without a tracer a step is only runStep,
    // with nothing built or checked per step.
    const traced = yield* Trace.enabled
    const untraced = (step: ScopeSteps.Step, i: number) => runStep(engine, window, phase, step, i + 1, steps.length, exit)
    const run = !traced ? untraced : (step: ScopeSteps.Step, i: number) =>
      Trace.span(step.name, untraced(step, i), {
        attributes: { "winddown.phase": phase, "winddown.step.name": step.name, "winddown.step.index": i + 1 },
        end: (r) => ({
          "winddown.step.outcome": r.outcome,
          "winddown.step.duration_ms": Math.round(r.durationMs),
          ...(r.allowanceMs === undefined ? {} : { "winddown.step.allowance_ms": Math.round(r.allowanceMs) }),
          ...(r.detail === undefined ? {} : { "winddown.step.detail": r.detail })
        }),
        failed: (r) => r.outcome !== "ok"
      })
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
    const report = Engine.leavePhase(engine, forced ? "forced" : reports.some((s) => s.outcome === "timedOut") ? "timedOut" : "ok")
    yield* recordPhase(report)
    return report
  })

/** The phase's duration and its steps by outcome (one update per outcome, not per step). */
const recordPhase = (report: ShutdownReport.PhaseReport): Effect.Effect<void> => {
  const byOutcome = new Map<string, number>()
  for (const step of report.steps) byOutcome.set(step.outcome, (byOutcome.get(step.outcome) ?? 0) + 1)
  return Effect.andThen(
    Metric.update(ShutdownMetrics.series("winddown.phase.duration", { "winddown.phase": report.phase }), report.durationMs / 1000),
    Effect.forEach(byOutcome, ([outcome, n]) =>
      Metric.update(
        ShutdownMetrics.series("winddown.steps", { "winddown.phase": report.phase, "winddown.step.outcome": outcome }),
        n
      ), { discard: true })
  )
}

const tracedPhase = (engine: Engine.Engine, phase: Phase.Phase, exit: Exit.Exit<unknown, unknown>) =>
  Trace.span(`winddown.${phase}`, runPhase(engine, phase, exit), {
    attributes: { "winddown.phase": phase },
    end: (p) => ({
      "winddown.phase.outcome": p.outcome,
      "winddown.phase.allowance_ms": Math.round(p.allowanceMs),
      "winddown.phase.duration_ms": Math.round(p.durationMs),
      "winddown.phase.steps": p.steps.length
    }),
    failed: (p) => p.outcome !== "ok"
  })

/** Wait for the start, run every phase and publish the report, in one span. */
export const run = (engine: Engine.Engine): Effect.Effect<ShutdownReport.ShutdownReport> =>
  Effect.flatMap(Deferred.await(engine.started), (reason) =>
    Trace.span("winddown.shutdown", runPhases(engine, reason), {
      root: true,
      attributes: {
        "winddown.reason": reason._tag,
        ...(reason._tag === "signal" ? { "winddown.signal": reason.signal } : {}),
        "winddown.timeout_ms": engine.budget.timeoutMs,
        ...Object.fromEntries(Phase.all.map((p) => [`winddown.budget.${p}_ms`, engine.budget.phasesMs[p]]))
      },
      end: (report) => ({
        "winddown.exit_code": report.exitCode,
        "winddown.forced": report.forced !== undefined,
        "winddown.duration_ms": Math.round(report.durationMs),
        "winddown.steps_not_ok": ShutdownReport.steps(report).filter((s) => s.outcome !== "ok").length,
        ...(report.budgetSpent === undefined ? {} : { "winddown.budget_spent_during": report.budgetSpent.during })
      }),
      failed: (report) => !ShutdownReport.isClean(report)
    }))

const runPhases = (engine: Engine.Engine, reason: ShutdownReport.Reason): Effect.Effect<ShutdownReport.ShutdownReport> =>
  Effect.gen(function*() {
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
      yield* tracedPhase(engine, phase, exit)
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
    yield* Metric.update(
      ShutdownMetrics.series("winddown.shutdowns", {
        "winddown.reason": reason._tag,
        "winddown.exit_code": String(report.exitCode)
      }),
      1
    )
    yield* Metric.update(
      ShutdownMetrics.series("winddown.shutdown.duration", { "winddown.reason": reason._tag }),
      report.durationMs / 1000
    )
    yield* Deferred.succeed(engine.report, report)
    return report
  })
