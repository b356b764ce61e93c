/**
 * Run one cleanup step so that nothing it does can stop the shutdown: it runs
 * in its own fiber, is awaited only until its deadline (its own timeout, the
 * phase's allowance, or the escalation cut, whichever comes first), and is
 * then interrupted and given a short grace for its own finalizers before the
 * sequence moves on without it. Failures and defects are reported, not
 * rethrown.
 */
import { Cause, Clock, Deferred, Effect, Exit, Fiber } from "effect"
import * as Phase from "../Phase.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"
import { type Engine, hardDeadline } from "./engine.ts"
import type { Step } from "./scopeSteps.ts"
import { StepDeadline } from "./stepDeadline.ts"

type Wake = { readonly _tag: "done"; readonly exit: Exit.Exit<unknown, unknown> } | { readonly _tag: "tick" }

const tick: Wake = { _tag: "tick" }

/** Describe why a step failed, in one line. */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const squashed = Cause.squash(cause)
  return squashed instanceof Error ? squashed.message || squashed.name : String(squashed)
}

/** Wait until `deadline` (Clock ms), waking early when the shutdown is forced. */
const sleepUntil = (engine: Engine, deadline: number): Effect.Effect<Wake> =>
  Effect.suspend(() => {
    const wait = deadline - engine.clock.currentTimeMillisUnsafe()
    const sleep = Effect.as(Effect.sleep(Math.max(0, wait)), tick)
    return engine.forcedAt === undefined ? Effect.raceFirst(sleep, Effect.as(Deferred.await(engine.forced), tick)) : sleep
  })

/** Where escalation cuts a step of `phase`: at once for waits and drains, a short timeout for the rest. */
const forcedCut = (engine: Engine, phase: Phase.Phase): number =>
  engine.forcedAt === undefined
    ? Infinity
    : engine.forcedAt + (Phase.isSkippedWhenForced(phase) ? 0 : engine.settings.forcedStepTimeoutMs)

export const runStep = (
  engine: Engine,
  phase: Phase.Phase,
  step: Step,
  index: number,
  count: number,
  phaseDeadline: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<ShutdownReport.StepReport> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const timeoutMs = step.timeoutMs ?? engine.settings.stepTimeoutMs
    const stepDeadline = timeoutMs === undefined ? Infinity : start + timeoutMs
    // The latest moment the step may run unless escalation cuts it earlier.
    const natural = Math.min(stepDeadline, phaseDeadline, hardDeadline(engine))
    const deadline = () => Math.min(natural, forcedCut(engine, phase))
    // Started at once: a step forced before its first instant still runs up
    // to its first wait, so its interrupt handlers (a drain interrupting its
    // units and awaiting their checkpoints) see the interrupt.
    const fiber = yield* Effect.forkDetach(
      Effect.interruptible(Effect.suspend(() => step.run(exit))).pipe(
        Effect.provideService(StepDeadline, deadline())
      ),
      { startImmediately: true }
    )
    let outcome: ShutdownReport.StepOutcome | undefined
    let detail: string | undefined
    while (outcome === undefined) {
      const wake: Wake = yield* Effect.raceFirst(
        Effect.map(Fiber.await(fiber), (exit): Wake => ({ _tag: "done", exit })),
        sleepUntil(engine, deadline())
      )
      if (wake._tag === "done") {
        if (Exit.isSuccess(wake.exit)) outcome = "ok"
        else if (Cause.hasInterruptsOnly(wake.exit.cause)) outcome = "interrupted"
        else {
          outcome = "failed"
          detail = describeCause(wake.exit.cause)
        }
      } else {
        const current = deadline()
        if ((yield* Clock.currentTimeMillis) < current) continue
        const cut = current < natural
        outcome = cut ? "interrupted" : "timedOut"
        detail = cut
          ? `interrupted by ${engine.forcedSignal ?? "escalation"}`
          : `ran past its ${natural === stepDeadline ? "timeout" : natural === phaseDeadline ? `${phase} allowance` : "hard deadline"}`
        yield* abandon(engine, fiber)
      }
    }
    const durationMs = (yield* Clock.currentTimeMillis) - start
    return {
      name: step.name,
      phase,
      index,
      outcome,
      durationMs,
      ...(detail === undefined ? {} : { detail })
    } satisfies ShutdownReport.StepReport
  }).pipe(Effect.tap((report) => logStep(report, count)))

/**
 * Interrupt a step that ran out of time and give its finalizers (a checkpoint,
 * say) a short grace, never past the hard deadline. A step that ignores the
 * interrupt is left behind.
 */
const abandon = (engine: Engine, fiber: Fiber.Fiber<unknown, unknown>): Effect.Effect<void> =>
  Effect.suspend(() => {
    fiber.interruptUnsafe()
    const grace = Math.min(engine.settings.forcedStepTimeoutMs, hardDeadline(engine) - engine.clock.currentTimeMillisUnsafe())
    return grace > 0 ? Effect.asVoid(Effect.timeoutOption(Fiber.await(fiber), grace)) : Effect.void
  })

const verbs: Record<ShutdownReport.StepOutcome, string> = {
  ok: "done",
  failed: "failed",
  timedOut: "timed out",
  interrupted: "interrupted",
  skipped: "skipped"
}

const logStep = (report: ShutdownReport.StepReport, count: number): Effect.Effect<void> => {
  const line = `[winddown] ${report.phase} ${report.index}/${count} "${report.name}" ${verbs[report.outcome]} in ${
    Math.round(report.durationMs)
  } ms${report.detail === undefined ? "" : `: ${report.detail}`}`
  return report.outcome === "ok" ? Effect.logInfo(line) : Effect.logWarning(line)
}
