/**
 * The mutable heart of one Shutdown: its budget and settings, phase scopes,
 * the deferreds that mark start, escalation and the end, and the live record
 * of what ran (finished phases, the current phase with its running steps,
 * steps left behind, drain samples). The report, final or written by the
 * watchdog mid-way, is always built from this record by {@link snapshot}, so
 * the two can never disagree. The public service in Shutdown.ts is a thin face
 * over it.
 */
import { type Clock, Deferred, Exit, Scope } from "effect"
import type * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"
import * as Deadline from "./deadline.ts"
import * as ExitCode from "./exitCode.ts"

export interface Settings extends ExitCode.Settings {
  readonly stepTimeoutMs: number | undefined
  readonly forcedStepTimeoutMs: number
  readonly progressIntervalMs: number
}

/** A step running now, for a report written before it ends. */
export interface RunningStep {
  readonly window: Deadline.StepWindow
  readonly index: number
}

/** A step abandoned at its deadline whose fiber had not ended yet. */
export interface LeftBehind {
  readonly phase: Phase.Phase
  readonly index: number
  readonly name: string
  readonly isRunning: () => boolean
}

interface CurrentPhase {
  readonly phase: Phase.Phase
  readonly window: Deadline.PhaseWindow
  readonly steps: Array<ShutdownReport.StepReport>
  readonly running: Set<RunningStep>
}

export interface Engine extends Deadline.Times {
  readonly budget: Budget.Budget
  readonly settings: Settings
  readonly clock: Clock.Clock
  readonly scopes: { readonly [P in Phase.Phase]: Scope.Closeable }
  readonly started: Deferred.Deferred<ShutdownReport.Reason>
  readonly forced: Deferred.Deferred<void>
  readonly programDone: Deferred.Deferred<Exit.Exit<unknown, unknown>>
  readonly report: Deferred.Deferred<ShutdownReport.ShutdownReport>
  readonly sections: Map<string, () => Readonly<Record<string, unknown>>>
  readonly progress: Map<string, () => string | undefined>
  /** What each subsystem has in flight, for the drain samples. */
  readonly inFlight: Map<string, () => number>
  readonly phases: Array<ShutdownReport.PhaseReport>
  readonly leftBehind: Set<LeftBehind>
  readonly samples: Array<ShutdownReport.Sample>
  status: Phase.Status
  startedAt: number | undefined
  reason: ShutdownReport.Reason | undefined
  forcedAt: number | undefined
  forcedSignal: string | undefined
  current: CurrentPhase | undefined
  /** The budget was spent before the phases ended: when, and in which phase. */
  budgetSpent: { readonly at: number; readonly during: Phase.Status } | undefined
  /** Decided once the phases ran (see exitCode.ts). */
  exitCode: number | undefined
  /** A code a subsystem asked for because its work did not end cleanly (the first one wins). */
  uncleanExitCode: number | undefined
}

export const make = (budget: Budget.Budget, settings: Settings, clock: Clock.Clock): Engine => {
  const root = Scope.makeUnsafe()
  return {
    budget,
    settings,
    clock,
    scopes: Object.fromEntries(Phase.all.map((p) => [p, Scope.forkUnsafe(root)])) as Engine["scopes"],
    started: Deferred.makeUnsafe(),
    forced: Deferred.makeUnsafe(),
    programDone: Deferred.makeUnsafe(),
    report: Deferred.makeUnsafe(),
    sections: new Map(),
    progress: new Map(),
    inFlight: new Map(),
    phases: [],
    leftBehind: new Set(),
    samples: [],
    status: "running",
    startedAt: undefined,
    reason: undefined,
    forcedAt: undefined,
    forcedSignal: undefined,
    current: undefined,
    budgetSpent: undefined,
    exitCode: undefined,
    uncleanExitCode: undefined
  }
}

export const now = (engine: Engine): number => engine.clock.currentTimeMillisUnsafe()

/** Start the shutdown; false when it had already started. */
export const start = (engine: Engine, reason: ShutdownReport.Reason): boolean => {
  if (engine.startedAt !== undefined) return false
  engine.startedAt = now(engine)
  engine.reason = reason
  Deferred.doneUnsafe(engine.started, Exit.succeed(reason))
  return true
}

/** Escalate: waits and drains end now, remaining steps get a short timeout. */
export const force = (engine: Engine, signal: string): boolean => {
  if (engine.forcedAt !== undefined) return false
  engine.forcedAt = now(engine)
  engine.forcedSignal = signal
  Deferred.doneUnsafe(engine.forced, Exit.void)
  return true
}

export const enterPhase = (engine: Engine, phase: Phase.Phase): Deadline.PhaseWindow => {
  const window = Deadline.phase(engine, phase, now(engine))
  engine.status = phase
  engine.current = { phase, window, steps: [], running: new Set() }
  return window
}

export const stepStarted = (engine: Engine, step: RunningStep): void => void engine.current?.running.add(step)

export const stepEnded = (engine: Engine, step: RunningStep, report: ShutdownReport.StepReport): void => {
  engine.current?.running.delete(step)
  engine.current?.steps.push(report)
}

export const leavePhase = (engine: Engine, outcome: ShutdownReport.PhaseReport["outcome"]): ShutdownReport.PhaseReport => {
  const current = engine.current!
  const report: ShutdownReport.PhaseReport = {
    phase: current.phase,
    startMs: current.window.start - engine.startedAt!,
    durationMs: now(engine) - current.window.start,
    allowanceMs: current.window.allowanceMs,
    outcome,
    steps: current.steps.slice().sort((a, b) => a.index - b.index)
  }
  engine.phases.push(report)
  engine.current = undefined
  return report
}

/** Record one drain sample: what each subsystem has in flight now. */
export const sample = (engine: Engine): void => {
  if (engine.inFlight.size === 0 || engine.startedAt === undefined) return
  const inFlight: Record<string, number> = {}
  for (const [name, count] of engine.inFlight) inFlight[name] = safely(count, 0)
  engine.samples.push({ atMs: now(engine) - engine.startedAt, inFlight })
}

/** Steps abandoned at their deadline whose fibers are still running. */
export const stillRunning = (engine: Engine): ReadonlyArray<LeftBehind> => {
  const out: Array<LeftBehind> = []
  for (const left of engine.leftBehind) {
    if (left.isRunning()) out.push(left)
    else engine.leftBehind.delete(left)
  }
  return out
}

const safely = <A>(f: () => A, fallback: A): A => {
  try {
    return f()
  } catch {
    return fallback
  }
}

/**
 * The report as of now. After the last phase it is the final report; while
 * a phase runs (the watchdog writing it at the hard deadline) the current
 * phase is `running` with its running steps; phases not run are `notReached`.
 */
export const snapshot = (engine: Engine, exitCode: number): ShutdownReport.ShutdownReport => {
  const startedAt = engine.startedAt ?? now(engine)
  const at = now(engine)
  const phases = engine.phases.slice()
  const current = engine.current
  if (current !== undefined) {
    const running = Array.from(current.running, ({ window, index }): ShutdownReport.StepReport => ({
      name: window.name,
      phase: window.phase,
      index,
      outcome: "running",
      startMs: window.start - startedAt,
      durationMs: at - window.start,
      allowanceMs: window.natural - window.start,
      detail: "still running when the report was written"
    }))
    phases.push({
      phase: current.phase,
      startMs: current.window.start - startedAt,
      durationMs: at - current.window.start,
      allowanceMs: current.window.allowanceMs,
      outcome: "running",
      steps: [...current.steps, ...running].sort((a, b) => a.index - b.index)
    })
  }
  for (const phase of Phase.all.slice(phases.length)) {
    phases.push({ phase, startMs: at - startedAt, durationMs: 0, allowanceMs: 0, outcome: "notReached", steps: [] })
  }
  const left = stillRunning(engine)
  const marked = left.length === 0 ? phases : phases.map((p) => ({
    ...p,
    steps: p.steps.map((s) =>
      left.some((l) => l.phase === s.phase && l.index === s.index) ? { ...s, leftRunning: true } : s
    )
  }))
  return {
    reason: engine.reason ?? { _tag: "interrupted" },
    startedAt,
    durationMs: at - startedAt,
    timeoutMs: engine.budget.timeoutMs,
    phases: marked,
    ...(engine.forcedAt === undefined ? {} : {
      forced: { signal: engine.forcedSignal ?? "escalation", atMs: engine.forcedAt - startedAt }
    }),
    ...(engine.budgetSpent === undefined ? {} : {
      budgetSpent: { atMs: engine.budgetSpent.at - startedAt, during: engine.budgetSpent.during }
    }),
    sections: Array.from(engine.sections, ([name, data]) => ({ name, data: safely(data, { error: "unreadable" }) })),
    ...(engine.samples.length === 0 ? {} : { samples: engine.samples.slice() }),
    exitCode
  }
}

/** The budget is spent: no further phase runs, and the exit code is the deadline's. */
export const spendBudget = (engine: Engine): void => {
  engine.budgetSpent ??= { at: now(engine), during: engine.status }
}

/** The exit code decided for this shutdown (see exitCode.ts). */
export const decideExitCode = (engine: Engine): number =>
  engine.budgetSpent !== undefined
    ? ExitCode.atDeadline(engine.settings)
    : ExitCode.decide(
      engine.settings,
      engine.reason ?? { _tag: "interrupted" },
      engine.forcedAt !== undefined,
      engine.uncleanExitCode
    )

/** Work the shutdown waited for did not end cleanly: end with `code` rather than 0 (the first request wins). */
export const requestExitCode = (engine: Engine, code: number): void => {
  if (engine.exitCode === undefined) engine.uncleanExitCode ??= code
}
