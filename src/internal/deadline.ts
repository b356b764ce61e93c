/**
 * The one owner of shutdown time. Every deadline of a shutdown is computed
 * here, once, from the budget, the instant the shutdown started and the
 * instant it was forced: the hard deadline, a phase's, a step's, the wrap-up
 * (soft) deadline of a drain, the default end of a `wait`, the grace of an
 * abandoned step. Everything else reads these values: the step runner, drains,
 * workers, `wait`, the HTTP drain and the Node watchdog. No other module does
 * deadline arithmetic.
 *
 * Instants are Clock milliseconds (TestClock time in tests); `Infinity` means
 * "no deadline".
 */
import { Context } from "effect"
import type * as Budget from "../Budget.ts"
import * as Phase from "../Phase.ts"

/** What the arithmetic needs: the budget, two settings and the two instants of a shutdown. */
export interface Times {
  readonly budget: Budget.Budget
  readonly settings: {
    readonly stepTimeoutMs: number | undefined
    readonly forcedStepTimeoutMs: number
  }
  readonly startedAt: number | undefined
  readonly forcedAt: number | undefined
}

/** The instant the budget is spent; Infinity before the shutdown started. */
export const hard = (t: Times): number => t.startedAt === undefined ? Infinity : t.startedAt + t.budget.timeoutMs

/** Milliseconds left before the hard deadline: the whole budget before the start, never below 0. */
export const remaining = (t: Times, now: number): number =>
  t.startedAt === undefined ? t.budget.timeoutMs : Math.max(0, hard(t) - now)

/** A phase starting at `start`: its budget, cut by the hard deadline. */
export interface PhaseWindow {
  readonly start: number
  readonly deadline: number
  readonly allowanceMs: number
}

export const phase = (t: Times, phase: Phase.Phase, start: number): PhaseWindow => {
  const allowanceMs = Math.max(0, Math.min(t.budget.phasesMs[phase], hard(t) - start))
  return { start, deadline: start + allowanceMs, allowanceMs }
}

/** What bounds a step when nothing forces it: its timeout, its phase or the hard deadline. */
export type Bound = "timeout" | "phase" | "hard"

/** A step's window: where it ends by itself at the latest, and why. */
export interface StepWindow {
  readonly name: string
  readonly phase: Phase.Phase
  readonly start: number
  readonly natural: number
  readonly bound: Bound
  /** The step's own timeout (or the default `stepTimeout`), if any. */
  readonly timeoutMs: number | undefined
}

export const step = (
  t: Times,
  window: PhaseWindow,
  phase: Phase.Phase,
  name: string,
  start: number,
  timeoutMs: number | undefined
): StepWindow => {
  const own = timeoutMs ?? t.settings.stepTimeoutMs
  const byTimeout = own === undefined ? Infinity : start + own
  const byHard = hard(t)
  // Never before the start: a step starting past a deadline has no time, not negative time.
  const natural = Math.max(start, Math.min(byTimeout, window.deadline, byHard))
  const bound: Bound = natural === byTimeout ? "timeout" : natural === window.deadline ? "phase" : "hard"
  return { name, phase, start, natural, bound, timeoutMs: own }
}

/**
 * Where escalation cuts a step of `phase`: at once for waits and drains, after
 * `forcedStepTimeout` for the rest; Infinity while not forced.
 */
export const forcedCut = (t: Times, phase: Phase.Phase): number =>
  t.forcedAt === undefined
    ? Infinity
    : t.forcedAt + (Phase.isSkippedWhenForced(phase) ? 0 : t.settings.forcedStepTimeoutMs)

/** The instant a step ends at the latest, escalation included. */
export const stepDeadline = (t: Times, w: StepWindow): number => Math.min(w.natural, forcedCut(t, w.phase))

/** How long an interrupted step's own finalizers may still run before it is left behind. */
export const abandonGrace = (t: Times, now: number): number =>
  Math.max(0, Math.min(t.settings.forcedStepTimeoutMs, hard(t) - now))

/**
 * Where a `wait` without its own timeout stops: before `deadline`, leaving a
 * tenth of the time left (at most `forcedStepTimeout`) to act on a `false`.
 */
export const waitEnd = (t: Times, deadline: number, now: number): number =>
  deadline === Infinity ? Infinity : deadline - Math.min(t.settings.forcedStepTimeoutMs, Math.max(0, deadline - now) / 10)

/** How a drain sets its wrap-up request: a share of its time, or a fixed delay. */
export interface SoftRule {
  readonly softRatio: number
  readonly softTimeoutMs: number | undefined
}

/**
 * The wrap-up (soft) deadline of work closing at `start` with `deadline`:
 * `softTimeout` after the start, else `softRatio` of the time; never after
 * the deadline. Infinity when the rule leaves no soft deadline before it.
 */
export const soft = (start: number, deadline: number, rule: SoftRule): number => {
  if (deadline === Infinity) return rule.softTimeoutMs === undefined ? Infinity : start + rule.softTimeoutMs
  const span = deadline - start
  const at = start + Math.min(span, rule.softTimeoutMs ?? rule.softRatio * span)
  return at >= deadline ? Infinity : at
}

/** The instant `ms` after `now`: a wait's own timeout, a drain closed outside a shutdown. */
export const after = (now: number, ms: number): number => now + ms

/** A child drain's deadline: its own timeout from `now`, never after its parent's. */
export const child = (now: number, parent: number, timeoutMs: number | undefined): number =>
  Math.min(parent, timeoutMs === undefined ? Infinity : now + timeoutMs)

/**
 * How long a process may stay alive once its report is written (something
 * still holds it): `graceMs`, never past the hard deadline.
 */
export const exitGrace = (remainingMs: number, graceMs: number): number => Math.max(0, Math.min(graceMs, remainingMs))

/** The most a Node timer can wait in one go (larger delays fire at once with a warning). */
export const maxTimerMs = 2 ** 31 - 1

/**
 * The step a fiber runs in, so code inside it (a drain, a `wait`, the HTTP
 * drain) reads its deadline instead of computing one. Outside a step: none.
 */
export interface CurrentStep {
  readonly window: StepWindow
  readonly times: Times
}

/** The current step's deadline now (earlier once the shutdown is forced). */
export const currentDeadline = (step: CurrentStep): number => stepDeadline(step.times, step.window)

export const CurrentStep = Context.Reference<CurrentStep | undefined>("winddown/CurrentStep", {
  defaultValue: () => undefined
})
