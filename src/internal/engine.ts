/**
 * The mutable heart of one Shutdown: its budget, phase scopes, the deferreds
 * that mark start, escalation and the end, and what the report needs. The
 * public service in Shutdown.ts is a thin face over this record.
 */
import { type Clock, Deferred, Exit, Scope } from "effect"
import type * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"

export interface Settings {
  readonly stepTimeoutMs: number | undefined
  readonly forcedStepTimeoutMs: number
  readonly signalExit: "success" | "conventional"
  readonly forcedExitCode: number
  readonly deadlineExitCode: number
  readonly progressIntervalMs: number
}

export interface Engine {
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
  status: Phase.Status
  startedAt: number | undefined
  reason: ShutdownReport.Reason | undefined
  forcedAt: number | undefined
  forcedSignal: string | undefined
  phaseDeadline: number | undefined
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
    status: "running",
    startedAt: undefined,
    reason: undefined,
    forcedAt: undefined,
    forcedSignal: undefined,
    phaseDeadline: undefined
  }
}

/** Milliseconds since the shutdown started (0 before). */
export const elapsed = (engine: Engine): number =>
  engine.startedAt === undefined ? 0 : engine.clock.currentTimeMillisUnsafe() - engine.startedAt

/** The Clock time at which the budget is spent (the watchdog's moment). */
export const hardDeadline = (engine: Engine): number => (engine.startedAt ?? 0) + engine.budget.timeoutMs

/** Milliseconds left before the hard deadline (the whole budget before the start). */
export const remainingMs = (engine: Engine): number => engine.budget.timeoutMs - elapsed(engine)

/** Start the shutdown; false when it had already started. */
export const start = (engine: Engine, reason: ShutdownReport.Reason): boolean => {
  if (engine.startedAt !== undefined) return false
  engine.startedAt = engine.clock.currentTimeMillisUnsafe()
  engine.reason = reason
  Deferred.doneUnsafe(engine.started, Exit.succeed(reason))
  return true
}

/** Escalate: waits and drains end now, remaining steps get a short timeout. */
export const force = (engine: Engine, signal: string): boolean => {
  if (engine.forcedAt !== undefined) return false
  engine.forcedAt = engine.clock.currentTimeMillisUnsafe()
  engine.forcedSignal = signal
  Deferred.doneUnsafe(engine.forced, Exit.void)
  return true
}

/** Signal numbers for the conventional 128+n exit codes (POSIX numbering; SIGBREAK is Windows'). */
export const signalNumbers: Readonly<Record<string, number>> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15, SIGBREAK: 21
}

export const exitCodeFor = (engine: Engine): number => {
  const reason = engine.reason
  if (engine.forcedAt !== undefined) return engine.settings.forcedExitCode
  switch (reason?._tag) {
    case "signal":
      return engine.settings.signalExit === "success" ? 0 : 128 + (signalNumbers[reason.signal] ?? 0)
    case "failed":
      return reason.exitCode
    case "interrupted":
      return 130
    case "uncaughtException":
    case "unhandledRejection":
      return 1
    default:
      return 0
  }
}
