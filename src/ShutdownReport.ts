/**
 * What happened during a shutdown, as data: why it started, each phase and
 * step with its duration and outcome, what was forced, and the exit code.
 *
 * The Shutdown service builds one report per shutdown; programs and tests read
 * it with `Shutdown.awaitReport`, and the Node layer can print it as one JSON
 * line.
 *
 * @since 0.1.0
 */
import type * as Phase from "./Phase.ts"

/**
 * Why the shutdown started.
 *
 * - `signal`: a process signal (see `signal`).
 * - `manual`: `Shutdown.trigger` was called (see `message`).
 * - `completed`: the program ended by itself with success.
 * - `failed`: the program failed (see `message`).
 * - `interrupted`: the program was interrupted by something else.
 * - `uncaughtException` / `unhandledRejection`: a crash turned into an orderly shutdown.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | { readonly _tag: "signal"; readonly signal: string }
  | { readonly _tag: "manual"; readonly message: string }
  | { readonly _tag: "completed" }
  | { readonly _tag: "failed"; readonly message: string; readonly exitCode: number }
  | { readonly _tag: "interrupted" }
  | { readonly _tag: "uncaughtException" | "unhandledRejection"; readonly message: string }

/**
 * How one step ended.
 *
 * @since 0.1.0
 * @category models
 */
export type StepOutcome = "ok" | "failed" | "timedOut" | "interrupted" | "skipped"

/**
 * One cleanup step.
 *
 * @since 0.1.0
 * @category models
 */
export interface StepReport {
  readonly name: string
  readonly phase: Phase.Phase
  /** 1-based position within its phase, in run order. */
  readonly index: number
  readonly outcome: StepOutcome
  /** Milliseconds from the step's start to its end (or to when it was abandoned). */
  readonly durationMs: number
  /** Present for `failed`, `timedOut` and `interrupted`. */
  readonly detail?: string
}

/**
 * One phase.
 *
 * @since 0.1.0
 * @category models
 */
export interface PhaseReport {
  readonly phase: Phase.Phase
  /** Milliseconds after the shutdown started. */
  readonly startMs: number
  readonly durationMs: number
  /** The time the phase was allowed: its budget, cut by the hard deadline. */
  readonly allowanceMs: number
  /** `timedOut` when the phase used its whole allowance, `forced` when a second signal cut it. */
  readonly outcome: "ok" | "timedOut" | "forced"
  readonly steps: ReadonlyArray<StepReport>
}

/**
 * Extra facts a subsystem (a drain, an HTTP server) adds to the report.
 *
 * @since 0.1.0
 * @category models
 */
export interface Section {
  readonly name: string
  readonly data: Readonly<Record<string, unknown>>
}

/**
 * The whole report.
 *
 * @since 0.1.0
 * @category models
 */
export interface ShutdownReport {
  readonly reason: Reason
  /** Epoch milliseconds (the Clock's time, so TestClock time in tests). */
  readonly startedAt: number
  readonly durationMs: number
  readonly timeoutMs: number
  readonly phases: ReadonlyArray<PhaseReport>
  /** Set when a second signal escalated the shutdown. */
  readonly forced?: { readonly signal: string; readonly atMs: number }
  readonly sections: ReadonlyArray<Section>
  readonly exitCode: number
}

/**
 * Every step of every phase, in run order.
 *
 * @since 0.1.0
 * @category combinators
 */
export const steps = (report: ShutdownReport): ReadonlyArray<StepReport> => report.phases.flatMap((p) => p.steps)

/**
 * True when every step ended `ok` and nothing was forced.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isClean = (report: ShutdownReport): boolean =>
  report.forced === undefined && steps(report).every((s) => s.outcome === "ok")

/**
 * Human words for a reason, e.g. `signal SIGTERM`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const describeReason = (reason: Reason): string => {
  switch (reason._tag) {
    case "signal":
      return `signal ${reason.signal}`
    case "manual":
      return `trigger (${reason.message})`
    case "failed":
    case "uncaughtException":
    case "unhandledRejection":
      return `${reason._tag}: ${reason.message}`
    default:
      return reason._tag
  }
}

/**
 * The report as one JSON line, prefixed so log pipelines can pick it out.
 *
 * @since 0.1.0
 * @category combinators
 */
export const toJsonLine = (report: ShutdownReport): string => `[winddown] report ${JSON.stringify(report)}`

const ms = (n: number) => (n >= 1000 ? `${+(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`)

const compact = (data: Readonly<Record<string, unknown>>): string =>
  Object.entries(data)
    .filter(([, v]) => typeof v === "number" || typeof v === "boolean" || typeof v === "string")
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")

/**
 * The report for people: one line for the outcome, one per phase that did
 * something, one per section.
 *
 * @since 0.1.0
 * @category combinators
 */
export const formatSummary = (report: ShutdownReport): string => {
  const lines = [
    `[winddown] report: ${describeReason(report.reason)}; ${ms(report.durationMs)} of ${ms(report.timeoutMs)}${
      report.forced ? `; forced by ${report.forced.signal} at ${ms(report.forced.atMs)}` : ""
    }; exit code ${report.exitCode}`
  ]
  const width = Math.max(...report.phases.map((p) => p.phase.length))
  for (const phase of report.phases) {
    if (phase.steps.length === 0 && !(phase.phase === "preStop" && phase.allowanceMs > 0)) continue
    const steps = phase.steps.map((s) => `${s.name} ${s.outcome === "ok" ? "" : `${s.outcome} `}${ms(s.durationMs)}`)
    lines.push(
      `  ${phase.phase.padEnd(width)}  ${ms(phase.durationMs).padStart(7)} of ${ms(phase.allowanceMs).padEnd(7)}  ${
        steps.join(" · ") || "(waited)"
      }`
    )
  }
  for (const section of report.sections) lines.push(`  ${section.name}: ${compact(section.data)}`)
  return lines.join("\n")
}
