/**
 * What happened during a shutdown, as data: why it started, each phase and
 * step with its duration, allowance and outcome, what was forced, what the
 * subsystems counted, and the exit code.
 *
 * The report has a `Schema`, so it survives a trip through a log pipeline: the
 * Node layer writes it as one JSON line (`{"event":"winddown.report",...}`)
 * that {@link fromJsonLine} reads back, from this version or an older one.
 *
 * @since 0.1.0
 */
import { Option, Schema } from "effect"
import * as Phase from "./Phase.ts"

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
 * @category schemas
 */
export const Reason = Schema.Union([
  Schema.Struct({ _tag: Schema.Literal("signal"), signal: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("manual"), message: Schema.String }),
  Schema.Struct({ _tag: Schema.Literal("completed") }),
  Schema.Struct({ _tag: Schema.Literal("failed"), message: Schema.String, exitCode: Schema.Number }),
  Schema.Struct({ _tag: Schema.Literal("interrupted") }),
  Schema.Struct({ _tag: Schema.Literals(["uncaughtException", "unhandledRejection"]), message: Schema.String })
])

/**
 * @since 0.1.0
 * @category models
 */
export type Reason = typeof Reason.Type

/**
 * How one step ended; `running` only in a report the watchdog wrote while the
 * step was still running.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StepOutcome = Schema.Literals(["ok", "failed", "timedOut", "interrupted", "skipped", "running"])

/**
 * @since 0.1.0
 * @category models
 */
export type StepOutcome = typeof StepOutcome.Type

/**
 * One step.
 *
 * @since 0.1.0
 * @category schemas
 */
export const StepReport = Schema.Struct({
  name: Schema.String,
  phase: Schema.Literals(Phase.all),
  /** 1-based position within its phase, in run order. */
  index: Schema.Number,
  outcome: StepOutcome,
  /** Milliseconds after the shutdown started. */
  startMs: Schema.optionalKey(Schema.Number),
  /** Milliseconds from the step's start to its end (or to when it was abandoned, or to the report). */
  durationMs: Schema.Number,
  /** The most the step could take when it started: its timeout, its phase's allowance or the hard deadline. */
  allowanceMs: Schema.optionalKey(Schema.Number),
  /** Present for `failed`, `timedOut`, `interrupted` and `running`. */
  detail: Schema.optionalKey(Schema.String),
  /** The step was abandoned and was still running when the report was written. */
  leftRunning: Schema.optionalKey(Schema.Boolean)
})

/**
 * @since 0.1.0
 * @category models
 */
export type StepReport = typeof StepReport.Type

/**
 * How a phase ended: `ok`, `timedOut` (a step used the phase's whole
 * allowance), `forced` (a second signal cut it), or, in a report the watchdog
 * wrote, `running` and `notReached`.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PhaseOutcome = Schema.Literals(["ok", "timedOut", "forced", "running", "notReached"])

/**
 * One phase.
 *
 * @since 0.1.0
 * @category schemas
 */
export const PhaseReport = Schema.Struct({
  phase: Schema.Literals(Phase.all),
  /** Milliseconds after the shutdown started. */
  startMs: Schema.Number,
  durationMs: Schema.Number,
  /** The time the phase was allowed: its budget, cut by the hard deadline. */
  allowanceMs: Schema.Number,
  outcome: PhaseOutcome,
  steps: Schema.Array(StepReport)
})

/**
 * @since 0.1.0
 * @category models
 */
export type PhaseReport = typeof PhaseReport.Type

/**
 * Extra facts a subsystem (a drain, an HTTP server) adds to the report.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Section = Schema.Struct({
  name: Schema.String,
  data: Schema.Record(Schema.String, Schema.Unknown)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Section = typeof Section.Type

/**
 * Work in flight per subsystem at one instant of the drain (one sample per
 * progress interval), for drawing.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Sample = Schema.Struct({
  atMs: Schema.Number,
  inFlight: Schema.Record(Schema.String, Schema.Number)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Sample = typeof Sample.Type

/**
 * The whole report.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ShutdownReport = Schema.Struct({
  reason: Reason,
  /** Epoch milliseconds (the Clock's time, so TestClock time in tests). */
  startedAt: Schema.Number,
  durationMs: Schema.Number,
  timeoutMs: Schema.Number,
  phases: Schema.Array(PhaseReport),
  /** Set when a second signal escalated the shutdown. */
  forced: Schema.optionalKey(Schema.Struct({ signal: Schema.String, atMs: Schema.Number })),
  /**
   * Set when the budget was spent before the phases ended (a step blocked the
   * event loop, say): later phases were not run, and the exit code is the
   * deadline's. `during`: the phase at that moment.
   */
  budgetSpent: Schema.optionalKey(Schema.Struct({ atMs: Schema.Number, during: Schema.String })),
  sections: Schema.Array(Section),
  samples: Schema.optionalKey(Schema.Array(Sample)),
  exitCode: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type ShutdownReport = typeof ShutdownReport.Type

/**
 * Every step of every phase, in run order.
 *
 * @since 0.1.0
 * @category combinators
 */
export const steps = (report: ShutdownReport): ReadonlyArray<StepReport> => report.phases.flatMap((p) => p.steps)

/**
 * True when every step ended `ok`, nothing was forced and the budget was
 * not spent.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isClean = (report: ShutdownReport): boolean =>
  report.forced === undefined && report.budgetSpent === undefined && steps(report).every((s) => s.outcome === "ok")

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
 * The value of the `event` field that marks a report line.
 *
 * @since 0.1.0
 * @category models
 */
export const event = "winddown.report"

const encode = Schema.encodeSync(ShutdownReport)
const decode = Schema.decodeUnknownOption(ShutdownReport)

/**
 * The report as one line of JSON, `{"event":"winddown.report", ...the report}`,
 * which any log pipeline parses as it is.
 *
 * @since 0.1.0
 * @category combinators
 */
export const toJsonLine = (report: ShutdownReport): string => JSON.stringify({ event, ...encode(report) })

/** The prefix of report lines written by winddown before the JSON-line format. */
const legacyPrefix = "[winddown] report {"

/**
 * Read a report back from one log line: a JSON line with `"event":
 * "winddown.report"` (extra fields ignored), or the older `[winddown] report
 * {...}` form. `None` for any other line.
 *
 * @since 0.1.0
 * @category combinators
 */
export const fromJsonLine = (line: string): Option.Option<ShutdownReport> => {
  const trimmed = line.trim()
  const legacy = trimmed.indexOf(legacyPrefix)
  const json = legacy >= 0 ? trimmed.slice(legacy + legacyPrefix.length - 1) : trimmed
  if (!json.startsWith("{")) return Option.none()
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return Option.none()
  }
  if (legacy < 0 && (typeof value !== "object" || value === null || (value as { event?: unknown }).event !== event)) {
    return Option.none()
  }
  return decode(value)
}

const ms = (n: number) => (n >= 1000 ? `${+(n / 1000).toFixed(2)} s` : `${Math.round(n)} ms`)

const compact = (data: Readonly<Record<string, unknown>>): string =>
  Object.entries(data)
    .filter(([, v]) => typeof v === "number" || typeof v === "boolean" || typeof v === "string")
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")

const phaseNote: Partial<Record<PhaseReport["outcome"], string>> = {
  running: "(running when the budget was spent)",
  notReached: "(not reached)"
}

/**
 * The report for people: one line for the outcome, one per phase (all six,
 * empty ones included), one per section.
 *
 * @since 0.1.0
 * @category combinators
 */
export const formatSummary = (report: ShutdownReport): string => {
  const lines = [
    `[winddown] report: ${describeReason(report.reason)}; ${ms(report.durationMs)} of ${ms(report.timeoutMs)}${
      report.forced ? `; forced by ${report.forced.signal} at ${ms(report.forced.atMs)}` : ""
    }${report.budgetSpent ? `; budget spent during ${report.budgetSpent.during}` : ""}; exit code ${report.exitCode}`
  ]
  const width = Math.max(...Phase.all.map((p) => p.length))
  for (const phase of report.phases) {
    const steps = phase.steps.map((s) =>
      `${s.name} ${s.outcome === "ok" ? "" : `${s.outcome}${s.leftRunning ? " (left running)" : ""} `}${ms(s.durationMs)}`
    )
    const what = steps.join(" · ") ||
      phaseNote[phase.outcome] ||
      (phase.phase === "preStop" && phase.allowanceMs > 0 ? "(waited)" : "(nothing to do)")
    lines.push(
      `  ${phase.phase.padEnd(width)}  ${ms(phase.durationMs).padStart(7)} of ${ms(phase.allowanceMs).padEnd(7)}  ${what}`
    )
  }
  for (const section of report.sections) lines.push(`  ${section.name}: ${compact(section.data)}`)
  return lines.join("\n")
}
