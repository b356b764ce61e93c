/**
 * Run one step so that nothing it does can stop the shutdown: it runs in its
 * own fiber, is awaited only until its deadline (read from deadline.ts: its
 * own timeout, the phase's allowance, the hard deadline or the escalation
 * cut), and is then interrupted and given a short grace for its own
 * finalizers before the sequence moves on without it. Failures and defects
 * are reported, not rethrown. A step that ends at once (most finalizers) takes
 * a fast path with no timer at all.
 */
import { Cause, Context, Data, Deferred, Effect, Exit, Fiber } from "effect"
import type * as Phase from "../Phase.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"
import * as Deadline from "./deadline.ts"
import * as Engine from "./engine.ts"
import * as Log from "./log.ts"
import type { Step } from "./scopeSteps.ts"

/**
 * A step may fail with this to say it ran out of time without being cut (a
 * wait that gave up at its deadline, say): it is then reported `timedOut`
 * with this message, not `failed`.
 */
export class StepTimedOut extends Data.TaggedError("StepTimedOut")<{ readonly message: string }> {}

/** Describe why a step failed, in one line. */
export const describeCause = (cause: Cause.Cause<unknown>): string => {
  const squashed = Cause.squash(cause)
  return squashed instanceof Error ? squashed.message || squashed.name : String(squashed)
}

const boundWords: Record<Deadline.Bound, (phase: Phase.Phase) => string> = {
  timeout: () => "timeout",
  phase: (phase) => `${phase} allowance`,
  hard: () => "hard deadline"
}

/** The outcome of a step that ended by itself. */
const ended = (exit: Exit.Exit<unknown, unknown>): [ShutdownReport.StepOutcome, string | undefined] => {
  if (Exit.isSuccess(exit)) return ["ok", undefined]
  if (Cause.hasInterruptsOnly(exit.cause)) return ["interrupted", undefined]
  const error = Cause.squash(exit.cause)
  if (error instanceof StepTimedOut) return ["timedOut", error.message]
  return ["failed", describeCause(exit.cause)]
}

type Wake = "done" | "tick"

/** Wait for the fiber, or until `deadline`, or for escalation: whichever first. */
const waitFor = (engine: Engine.Engine, fiber: Fiber.Fiber<unknown, unknown>, deadline: number): Effect.Effect<Wake> =>
  Effect.suspend(() => {
    const sleep = Effect.as(Effect.sleep(Math.max(0, deadline - Engine.now(engine))), "tick" as const)
    const done = Effect.as(Fiber.await(fiber), "done" as const)
    return engine.forcedAt === undefined
      ? Effect.raceAllFirst([done, sleep, Effect.as(Deferred.await(engine.forced), "tick" as const)])
      : Effect.raceFirst(done, sleep)
  })

export const runStep = (
  engine: Engine.Engine,
  phaseWindow: Deadline.PhaseWindow,
  phase: Phase.Phase,
  step: Step,
  index: number,
  count: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<ShutdownReport.StepReport> =>
  Effect.withFiber((parent) => {
    const start = Engine.now(engine)
    const window = Deadline.step(engine, phaseWindow, phase, step.name, start, step.timeoutMs)
    const current: Deadline.CurrentStep = { window, times: engine }
    const running: Engine.RunningStep = { window, index }
    Engine.stepStarted(engine, running)
    const finish = (outcome: ShutdownReport.StepOutcome, detail: string | undefined): Effect.Effect<ShutdownReport.StepReport> => {
      const report: ShutdownReport.StepReport = {
        name: step.name,
        phase,
        index,
        outcome,
        startMs: start - (engine.startedAt ?? start),
        durationMs: Engine.now(engine) - start,
        allowanceMs: window.natural - start,
        ...(detail === undefined ? {} : { detail })
      }
      Engine.stepEnded(engine, running, report)
      return Effect.as(logStep(report, count), report)
    }
    // Started at once: a step that ends without waiting (most finalizers) is
    // done here, with no timer. A step forced before its first instant still
    // runs up to its first wait, so its interrupt handlers (a drain
    // interrupting its units and awaiting their checkpoints) see the interrupt.
    const fiber = Effect.runForkWith(Context.add(parent.context, Deadline.CurrentStep, current))(
      Effect.interruptible(step.run(exit))
    )
    const done = fiber.pollUnsafe()
    if (done !== undefined) return finish(...ended(done))
    const wait: Effect.Effect<ShutdownReport.StepReport> = Effect.suspend(() => {
      const done = fiber.pollUnsafe()
      if (done !== undefined) return finish(...ended(done))
      const deadline = Deadline.currentDeadline(current)
      if (Engine.now(engine) < deadline) return Effect.andThen(waitFor(engine, fiber, deadline), wait)
      const cut = deadline < window.natural
      // Measured up to the end of the grace its finalizers got.
      return Effect.andThen(
        abandon(engine, fiber, phase, index, step),
        Effect.suspend(() =>
          finish(
            cut ? "interrupted" : "timedOut",
            cut ? `interrupted by ${engine.forcedSignal ?? "escalation"}` : `ran past its ${boundWords[window.bound](phase)}`
          )
        )
      )
    })
    return wait
  })

/**
 * Interrupt a step that ran out of time and give its finalizers (a checkpoint,
 * say) a short grace, never past the hard deadline. A step that ignores the
 * interrupt is left behind, and remembered: the process must not wait for it.
 */
const abandon = (
  engine: Engine.Engine,
  fiber: Fiber.Fiber<unknown, unknown>,
  phase: Phase.Phase,
  index: number,
  step: Step
): Effect.Effect<void> =>
  Effect.suspend(() => {
    fiber.interruptUnsafe()
    const grace = Deadline.abandonGrace(engine, Engine.now(engine))
    const wait = grace > 0 ? Effect.asVoid(Effect.timeoutOption(Fiber.await(fiber), grace)) : Effect.void
    const isRunning = step.isRunning ?? (() => fiber.pollUnsafe() === undefined)
    return Effect.andThen(
      wait,
      Effect.sync(() => {
        if (isRunning()) engine.leftBehind.add({ phase, index, name: step.name, isRunning })
      })
    )
  })

const verbs: Record<ShutdownReport.StepOutcome, string> = {
  ok: "done",
  failed: "failed",
  timedOut: "timed out",
  interrupted: "interrupted",
  skipped: "skipped",
  running: "still running"
}

const logStep = (report: ShutdownReport.StepReport, count: number): Effect.Effect<void> =>
  Log.lazy(report.outcome === "ok" ? "Info" : "Warn", () =>
    `[winddown] ${report.phase} ${report.index}/${count} "${report.name}" ${verbs[report.outcome]} in ${
      Math.round(report.durationMs)
    } ms${report.detail === undefined ? "" : `: ${report.detail}`}`, () => ({
    "winddown.phase": report.phase,
    "winddown.step.name": report.name,
    "winddown.step.outcome": report.outcome,
    "winddown.step.duration_ms": Math.round(report.durationMs),
    ...(report.allowanceMs === undefined ? {} : { "winddown.step.allowance_ms": Math.round(report.allowanceMs) }),
    ...(report.detail === undefined ? {} : { "winddown.step.detail": report.detail })
  }))
