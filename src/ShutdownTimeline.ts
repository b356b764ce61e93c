/**
 * A picture of one shutdown: a `ShutdownReport` drawn as an SVG timeline, and
 * the parser that picks reports out of a log.
 *
 * The six phases are bands (the allowance pale and dashed, the time used
 * solid), each step a bar in its own lane inside its phase, colored by how it
 * ended, with a whisker out to the time it was allowed. Marks show the signal
 * (t = 0), the escalation, the end and the hard deadline; drain counts over
 * time, when the report recorded them, are a step chart under the drain.
 *
 * Pure: no `node:` imports, no clock, no randomness. The same report always
 * gives the same bytes. Reports are read leniently (see {@link Report}):
 * fields the report type gains later are ignored, a step still `running` when
 * a watchdog wrote the report is drawn as such.
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import * as Phase from "./Phase.ts"

// ---------------------------------------------------------------------------
// The report as this module reads it: `ShutdownReport` widened.
// ---------------------------------------------------------------------------

/**
 * How a step ended: the outcomes of `ShutdownReport.StepOutcome`, plus
 * `running` for a step still running when a watchdog wrote the report. Any
 * other string is drawn too, in grey, under its own name.
 *
 * @since 0.1.0
 * @category models
 */
export type StepOutcome = "ok" | "failed" | "timedOut" | "interrupted" | "skipped" | "running"

/**
 * One step as drawn. `startMs` (from the start of the shutdown), `timeoutMs`
 * (its own timeout) and `allowanceMs` (the time it was allowed) are read when
 * present; without them the start is inferred from the phase (concurrent
 * phases start every step at once, the others one after the other) and the
 * allowance is what the phase and the hard deadline left it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Step {
  readonly name: string
  readonly outcome: StepOutcome | (string & {})
  readonly durationMs: number
  readonly phase?: string | undefined
  readonly index?: number | undefined
  readonly detail?: string | undefined
  readonly startMs?: number | undefined
  readonly timeoutMs?: number | undefined
  readonly allowanceMs?: number | undefined
}

/**
 * One phase as drawn.
 *
 * @since 0.1.0
 * @category models
 */
export interface PhaseReport {
  readonly phase: Phase.Phase | (string & {})
  readonly startMs: number
  readonly durationMs: number
  readonly allowanceMs: number
  readonly outcome: "ok" | "timedOut" | "forced" | (string & {})
  readonly steps: ReadonlyArray<Step>
}

/**
 * Units in flight per drain (or worker, or HTTP server) at one instant,
 * `atMs` after the start of the shutdown.
 *
 * @since 0.1.0
 * @category models
 */
export interface Sample {
  readonly atMs: number
  readonly inFlight: Readonly<Record<string, number>>
}

/**
 * A report as drawn: every `ShutdownReport.ShutdownReport` is one, and so is
 * a report of a later version with more fields, a `running` step or
 * `samples`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Report {
  readonly reason: {
    readonly _tag: string
    readonly signal?: string | undefined
    readonly message?: string | undefined
  }
  readonly startedAt?: number | undefined
  readonly durationMs: number
  readonly timeoutMs: number
  readonly phases: ReadonlyArray<PhaseReport>
  readonly forced?: { readonly signal: string; readonly atMs: number } | undefined
  readonly budgetSpent?: { readonly atMs: number; readonly during: string } | undefined
  readonly sections?: ReadonlyArray<{ readonly name: string; readonly data: Readonly<Record<string, unknown>> }> | undefined
  readonly exitCode: number
  readonly samples?: ReadonlyArray<Sample> | undefined
}

const num = Schema.Finite
const optional = <S extends Schema.Top>(s: S) => Schema.optionalKey(Schema.UndefinedOr(s))

/**
 * The lenient schema behind {@link decode}: the fields a drawing needs,
 * unknown fields ignored, outcomes and phase names any string.
 *
 * @since 0.1.0
 * @category models
 */
export const ReportSchema = Schema.Struct({
  reason: Schema.Struct({ _tag: Schema.String, signal: optional(Schema.String), message: optional(Schema.String) }),
  startedAt: optional(num),
  durationMs: num,
  timeoutMs: num,
  phases: Schema.Array(Schema.Struct({
    phase: Schema.String,
    startMs: num,
    durationMs: num,
    allowanceMs: num,
    outcome: Schema.String,
    steps: Schema.Array(Schema.Struct({
      name: Schema.String,
      outcome: Schema.String,
      durationMs: num,
      phase: optional(Schema.String),
      index: optional(num),
      detail: optional(Schema.String),
      startMs: optional(num),
      timeoutMs: optional(num),
      allowanceMs: optional(num)
    }))
  })),
  forced: optional(Schema.Struct({ signal: Schema.String, atMs: num })),
  exitCode: num,
  samples: optional(Schema.Array(Schema.Struct({ atMs: num, inFlight: Schema.Record(Schema.String, num) })))
})

const decodeSchema = Schema.decodeUnknownResult(ReportSchema)

/**
 * Read an unknown value (a parsed JSON object) as a {@link Report}, or say in
 * one line what is wrong with it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const decode = (u: unknown): Result.Result<Report, string> =>
  Result.mapError(decodeSchema(u), (e) => oneLine(e.message))

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim()

// ---------------------------------------------------------------------------
// Picking reports out of a log
// ---------------------------------------------------------------------------

/**
 * The `event` field of a report written as a structured log line.
 *
 * @since 0.1.0
 * @category models
 */
export const reportEvent = "winddown.report"

/**
 * What {@link parseReports} found: each report with its 1-based line number,
 * and each line that looked like a report but could not be read.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parsed {
  readonly reports: ReadonlyArray<{ readonly line: number; readonly report: Report }>
  readonly errors: ReadonlyArray<{ readonly line: number; readonly message: string }>
}

const oldPrefix = "[winddown] report "
const eventPattern = /"event"\s*:\s*"winddown\.report"/

/** A line's report candidate: undefined when the line is not about a report at all. */
const candidate = (text: string): { readonly json: unknown } | { readonly error: string } | undefined => {
  const brace = text.indexOf("{")
  if (brace < 0) return undefined
  // A JSON log line (maybe after a collector's prefix): the new format, or a
  // JSON logger that carried the old line as its message.
  let parsed: { readonly value: unknown } | { readonly error: unknown }
  try {
    parsed = { value: JSON.parse(text.slice(brace)) }
  } catch (error) {
    parsed = { error }
  }
  if ("value" in parsed && typeof parsed.value === "object" && parsed.value !== null && !Array.isArray(parsed.value)) {
    const record = parsed.value as Record<string, unknown>
    if (record.event === reportEvent) return { json: record }
    // A JSON logger that carried a report line (either format) as its message.
    for (const key of ["message", "msg"]) {
      const message = record[key]
      if (typeof message === "string" && (message.includes(oldPrefix + "{") || eventPattern.test(message))) {
        return candidate(message)
      }
    }
  }
  // The old format: a prefix, then the report's JSON.
  const at = text.indexOf(oldPrefix + "{")
  if (at >= 0) return parseJson(text.slice(at + oldPrefix.length), "after \"[winddown] report\"")
  if ("error" in parsed && eventPattern.test(text)) {
    return { error: `the report is not valid JSON (${describeError(parsed.error)})` }
  }
  return undefined
}

const parseJson = (text: string, where: string): { readonly json: unknown } | { readonly error: string } => {
  try {
    return { json: JSON.parse(text) }
  } catch (e) {
    return { error: `the JSON ${where} is malformed (${describeError(e)})` }
  }
}

const describeError = (e: unknown) => (e instanceof Error ? e.message : String(e))

/**
 * Pick the shutdown reports out of a log (JSON lines or plain text): lines
 * whose JSON object has `"event": "winddown.report"` with the report's fields
 * next to it, and lines carrying the older `[winddown] report {...}` (after
 * any prefix a log collector adds, or as the `message` of a JSON log line).
 * Every other line is ignored; a line that is clearly a report but cannot be
 * read is listed in `errors` with its line number.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseReports = (log: string): Parsed => {
  const reports: Array<{ line: number; report: Report }> = []
  const errors: Array<{ line: number; message: string }> = []
  const lines = log.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const found = candidate(lines[i]!)
    if (found === undefined) continue
    if ("error" in found) {
      errors.push({ line: i + 1, message: found.error })
      continue
    }
    const decoded = decode(found.json)
    if (Result.isSuccess(decoded)) reports.push({ line: i + 1, report: decoded.success })
    else errors.push({ line: i + 1, message: `not a shutdown report: ${decoded.failure}` })
  }
  return { reports, errors }
}

// ---------------------------------------------------------------------------
// Drawing
// ---------------------------------------------------------------------------

/**
 * Options of {@link toSvg}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Width of the picture in pixels (at least 560). */
  readonly width?: number | undefined
  /**
   * At most this many lanes per phase; the other steps share one lane (a
   * tick each) with a count. Failed, timed-out, interrupted and running
   * steps get a lane first, then the longest.
   */
  readonly maxStepsPerPhase?: number | undefined
  /** Prefix of the ids inside the SVG, for pages that inline several pictures. */
  readonly idPrefix?: string | undefined
}

/**
 * Defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  width: 960,
  maxStepsPerPhase: 12,
  idPrefix: "wd"
} as const

/**
 * Colors of the step outcomes (also the legend's).
 *
 * @since 0.1.0
 * @category models
 */
export const outcomeColors: Readonly<Record<StepOutcome, string>> = {
  ok: "#3f8f4f",
  failed: "#c62828",
  timedOut: "#e08a00",
  interrupted: "#7b4fb0",
  skipped: "#9e9e9e",
  running: "#1f6fb5"
}

const outcomeWords: Readonly<Record<StepOutcome, string>> = {
  ok: "ok",
  failed: "failed",
  timedOut: "timed out",
  interrupted: "interrupted",
  skipped: "skipped",
  running: "still running"
}

const phaseColors: Readonly<Record<Phase.Phase, string>> = {
  readiness: "#7aa6c2",
  preStop: "#a7c4a0",
  stopAccepting: "#e0b46a",
  drain: "#d9826b",
  cleanup: "#9d8ac7",
  flush: "#8c8c8c"
}

const sampleColors = ["#1f6fb5", "#c62828", "#3f8f4f", "#e08a00", "#7b4fb0", "#00838f", "#6d4c41", "#ad1457"]

const isKnownOutcome = (o: string): o is StepOutcome => Object.hasOwn(outcomeColors, o)
const outcomeColor = (o: string) => (isKnownOutcome(o) ? outcomeColors[o] : "#616161")
const outcomeWord = (o: string) => (isKnownOutcome(o) ? outcomeWords[o] : o)

// --- text -------------------------------------------------------------------

const invalidXml = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
const entities: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&apos;" }

/**
 * Escape a string for XML text or an attribute value. Characters XML 1.0
 * cannot carry at all (most control characters, lone surrogates) become
 * U+FFFD, so the output is always well-formed.
 *
 * @since 0.1.0
 * @category combinators
 */
export const escapeXml = (s: string): string =>
  s.replace(invalidXml, "\uFFFD").replace(/[&<>"']/g, (c) => entities[c]!)

/** Text shown on one line: whitespace runs (newlines too) become one space. */
const flat = (s: string) => s.replace(/\s+/g, " ").trim()

/**
 * Advance widths of Arial / Liberation Sans (the font the picture asks for)
 * for ASCII 32..126, in thousandths of an em.
 */
const arial = [
  278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
  556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
  1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
  667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
  333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
  556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584
]

/**
 * The width a text takes, estimated on the safe side: Arial's widths, bold
 * 15 % wider, anything outside ASCII a full em (wider for astral characters),
 * and 15 % more, enough for DejaVu Sans, the usual fallback where neither
 * Arial nor Liberation Sans is installed (checked in Chromium).
 */
const textWidth = (s: string, size: number, bold = false): number => {
  let units = 0
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    units += c >= 32 && c <= 126 ? arial[c - 32]! : c > 0xffff ? 1250 : 1000
  }
  return (units / 1000) * size * (bold ? 1.15 : 1) * 1.15
}

/** The text cut (with an ellipsis) to fit `max` pixels; whole code points only. */
const fit = (s: string, max: number, size: number, bold = false): string => {
  if (textWidth(s, size, bold) <= max) return s
  const chars = Array.from(s)
  let lo = 0
  let hi = chars.length
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (textWidth(chars.slice(0, mid).join("") + "…", size, bold) <= max) lo = mid
    else hi = mid - 1
  }
  return chars.slice(0, lo).join("").trimEnd() + "…"
}

// --- numbers ----------------------------------------------------------------

const finite = (n: unknown, fallback = 0): number => (typeof n === "number" && Number.isFinite(n) ? n : fallback)
const nonNeg = (n: unknown): number => Math.max(0, finite(n))

/** A coordinate, rounded to 0.1 px, never `-0`. */
const c = (n: number): string => {
  const r = Math.round(n * 10) / 10
  return String(r === 0 ? 0 : r)
}

/** Milliseconds for people, like the report summary: `740 ms`, `2.5 s`. */
const ms = (n: number): string => {
  if (!Number.isFinite(n)) return "?"
  const a = Math.abs(n)
  if (a >= 1000) return `${+(n / 1000).toFixed(a >= 100_000 ? 0 : 2)} s`
  if (a > 0 && a < 1) return `${+n.toFixed(2)} ms`
  return `${Math.round(n)} ms`
}

// --- the model the drawing works on ----------------------------------------

interface StepBox {
  readonly step: Step
  readonly phase: string
  readonly position: number
  readonly startMs: number
  readonly durationMs: number
  readonly allowanceMs: number
  readonly explicitAllowance: boolean
}

interface PhaseBox {
  readonly name: string
  readonly number: number | undefined
  readonly report: PhaseReport | undefined
  readonly steps: ReadonlyArray<StepBox>
}

/** The six phases in their order (a phase the report never reached stays, empty), then unknown ones. */
const phaseBoxes = (report: Report): ReadonlyArray<PhaseBox> => {
  const phases = Array.isArray(report.phases) ? report.phases : []
  const byName = new Map<string, PhaseReport>()
  for (const p of phases) if (!byName.has(String(p.phase))) byName.set(String(p.phase), p)
  const names = [...Phase.all, ...Array.from(byName.keys()).filter((n) => !Phase.isPhase(n))]
  const timeoutMs = nonNeg(report.timeoutMs)
  return names.map((name): PhaseBox => {
    const p = byName.get(name)
    const number = Phase.isPhase(name) ? Phase.indexOf(name) + 1 : undefined
    if (p === undefined) return { name, number, report: undefined, steps: [] }
    const phaseStart = nonNeg(p.startMs)
    const phaseEnd = phaseStart + nonNeg(p.allowanceMs)
    const concurrent = Phase.isPhase(name) && Phase.isConcurrent(name)
    let cursor = phaseStart
    const steps = (Array.isArray(p.steps) ? p.steps : []).map((step, position): StepBox => {
      const durationMs = nonNeg(step.durationMs)
      const startMs = step.startMs !== undefined && Number.isFinite(step.startMs)
        ? Math.max(0, step.startMs)
        : concurrent
        ? phaseStart
        : cursor
      cursor = Math.max(cursor, startMs + durationMs)
      const own = step.timeoutMs !== undefined && Number.isFinite(step.timeoutMs) ? startMs + Math.max(0, step.timeoutMs) : Infinity
      const natural = Math.min(own, phaseEnd, timeoutMs > 0 ? timeoutMs : Infinity)
      const explicit = step.allowanceMs !== undefined && Number.isFinite(step.allowanceMs)
      const allowanceMs = explicit ? Math.max(0, step.allowanceMs!) : Math.max(0, natural - startMs)
      return {
        step,
        phase: name,
        position,
        startMs,
        durationMs,
        allowanceMs,
        explicitAllowance: explicit || own !== Infinity
      }
    })
    return { name, number, report: p, steps }
  })
}

const badness = (o: string): number =>
  o === "running" ? 0 : o === "timedOut" ? 1 : o === "failed" ? 2 : o === "interrupted" ? 3 : o === "ok" || o === "skipped" ? 5 : 4

/**
 * The steps that get a lane of their own (in run order) and the rest. Steps
 * that did not end well come first, taking turns by outcome (running, timed
 * out, failed, interrupted, other) so each kind is seen, longest first; then
 * the longest of the rest.
 */
const chooseLanes = (steps: ReadonlyArray<StepBox>, max: number) => {
  if (steps.length <= max) return { shown: steps, hidden: [] as ReadonlyArray<StepBox> }
  const budget = Math.max(0, max - 1) // one lane shows the rest
  const byLength = (a: StepBox, b: StepBox) => b.durationMs - a.durationMs || a.position - b.position
  const classes = new Map<number, Array<StepBox>>()
  for (const s of steps) {
    const k = badness(String(s.step.outcome))
    classes.set(k, [...(classes.get(k) ?? []), s])
  }
  const bad = Array.from(classes.keys()).filter((k) => k < 5).sort((a, b) => a - b).map((k) => classes.get(k)!.sort(byLength))
  const keep = new Set<StepBox>()
  for (let i = 0; keep.size < budget && bad.some((c) => i < c.length); i++) {
    for (const c of bad) if (i < c.length && keep.size < budget) keep.add(c[i]!)
  }
  for (const s of (classes.get(5) ?? []).sort(byLength)) {
    if (keep.size >= budget) break
    keep.add(s)
  }
  return { shown: steps.filter((s) => keep.has(s)), hidden: steps.filter((s) => !keep.has(s)) }
}

const countOutcomes = (steps: ReadonlyArray<{ readonly step: Step }>): string => {
  const counts = new Map<string, number>()
  for (const { step } of steps) counts.set(String(step.outcome), (counts.get(String(step.outcome)) ?? 0) + 1)
  const order = [...Object.keys(outcomeColors), ...Array.from(counts.keys()).filter((k) => !isKnownOutcome(k)).sort()]
  return order.filter((o) => counts.has(o)).map((o) => `${counts.get(o)} ${outcomeWord(o)}`).join(", ")
}

const describeReason = (reason: Report["reason"] | undefined): string => {
  const tag = flat(String(reason?._tag ?? "unknown reason"))
  const message = reason?.message === undefined ? undefined : flat(String(reason.message))
  switch (tag) {
    case "signal":
      return `signal ${flat(String(reason?.signal ?? "?"))}`
    case "manual":
      return `trigger (${message ?? ""})`
    default:
      return message === undefined ? tag : `${tag}: ${message}`
  }
}

const isoTime = (epochMs: number | undefined): string | undefined => {
  if (epochMs === undefined || !Number.isFinite(epochMs) || Math.abs(epochMs) > 8.64e15) return undefined
  return new Date(epochMs).toISOString()
}

/** Nice tick spacing: 1, 2 or 5 times a power of ten, with ticks at least `minGap` px apart. */
const tickStep = (domainMs: number, plotWidth: number, minGap: number): number => {
  const raw = (domainMs * minGap) / Math.max(1, plotWidth)
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)))
  for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power
  return 10 * power
}

// --- SVG assembly -----------------------------------------------------------

const FONT = "Arial, Helvetica, 'Liberation Sans', sans-serif"
const SIZE = 11 // the small text; nothing is smaller

interface Label {
  readonly text: string
  readonly x: number
  readonly y: number
  readonly size?: number
  readonly anchor?: "start" | "middle" | "end"
  readonly bold?: boolean
  readonly fill?: string
  readonly halo?: boolean
  readonly tooltip?: string | undefined
  readonly cls?: string
}

const text = (l: Label): string => {
  const attrs = [
    `x="${c(l.x)}"`,
    `y="${c(l.y)}"`,
    l.size !== undefined && l.size !== SIZE ? `font-size="${l.size}"` : "",
    l.anchor !== undefined && l.anchor !== "start" ? `text-anchor="${l.anchor}"` : "",
    l.bold ? `font-weight="bold"` : "",
    l.fill !== undefined ? `fill="${l.fill}"` : "",
    l.halo ? `class="halo"` : ""
  ].filter((a) => a !== "").join(" ")
  const tip = l.tooltip === undefined ? "" : `<title>${escapeXml(l.tooltip)}</title>`
  return `<text ${attrs}>${tip}${escapeXml(l.text)}</text>`
}

/**
 * Lay out a report. Returns the SVG's inner content and its size; {@link toSvg}
 * wraps it, {@link toSvgAll} stacks several.
 */
const layout = (report: Report, options: Options) => {
  const width = Math.max(560, Math.round(finite(options.width, defaults.width)))
  const maxLanes = Math.max(2, Math.floor(finite(options.maxStepsPerPhase, defaults.maxStepsPerPhase)))
  const id = sanitizeId(options.idPrefix ?? defaults.idPrefix)
  const pad = 16
  const x0 = 232 // the plot starts here; the left column holds names
  const x1 = width - 28
  const rightLimit = width - 6 // the last pixel a text may reach
  const nameIndent = 30
  const nameMax = x0 - 10 - nameIndent

  const timeoutMs = nonNeg(report.timeoutMs)
  const durationMs = nonNeg(report.durationMs)
  const forcedAt = report.forced === undefined ? undefined : nonNeg(report.forced.atMs)
  const phases = phaseBoxes(report)
  const samples = (Array.isArray(report.samples) ? report.samples : [])
    .filter((s) => s !== null && typeof s === "object" && Number.isFinite(s.atMs))
    .slice()
    .sort((a, b) => a.atMs - b.atMs)

  // The time axis covers the hard deadline and everything that happened. When
  // what happened takes less than half of that (a 3 s shutdown in a 25 s
  // budget), the axis breaks: what happened gets most of the width, the rest
  // up to the deadline is compressed behind the break.
  let contentEnd = Math.max(durationMs, forcedAt ?? 0)
  let fullEnd = Math.max(timeoutMs, contentEnd)
  for (const p of phases) {
    if (p.report === undefined) continue
    const start = nonNeg(p.report.startMs)
    contentEnd = Math.max(contentEnd, start + nonNeg(p.report.durationMs))
    fullEnd = Math.max(fullEnd, start + nonNeg(p.report.allowanceMs))
    for (const s of p.steps) contentEnd = Math.max(contentEnd, s.startMs + s.durationMs)
  }
  for (const s of samples) contentEnd = Math.max(contentEnd, Math.max(0, s.atMs))
  fullEnd = Math.max(fullEnd, contentEnd)
  if (!(fullEnd > 0)) fullEnd = 1
  const linearEnd = contentEnd > 0 && contentEnd * 1.1 < fullEnd * 0.5 ? contentEnd * 1.1 : fullEnd
  const broken = linearEnd < fullEnd
  const breakGap = 16
  const xb = broken ? x0 + (x1 - x0) * 0.84 : x1
  const x = (t: number) => {
    const u = Math.min(Math.max(0, finite(t)), fullEnd)
    return u <= linearEnd
      ? x0 + (u / linearEnd) * (xb - x0)
      : xb + breakGap + ((u - linearEnd) / (fullEnd - linearEnd)) * (x1 - xb - breakGap)
  }

  const out: Array<string> = []
  const allSteps = phases.flatMap((p) => p.steps)

  // Title and subtitle.
  const title = `Shutdown: ${describeReason(report.reason)} · ${ms(durationMs)} of ${ms(timeoutMs)} · exit code ${
    finite(report.exitCode, NaN)
  }`
  const over = timeoutMs > 0 && durationMs > timeoutMs ? `ran ${ms(durationMs - timeoutMs)} past the hard deadline` : undefined
  const subtitleParts = [
    isoTime(report.startedAt) === undefined ? undefined : `started ${isoTime(report.startedAt)}`,
    `${allSteps.length} step${allSteps.length === 1 ? "" : "s"}${allSteps.length > 0 ? `: ${countOutcomes(allSteps)}` : ""}`,
    report.forced === undefined ? undefined : `forced by ${flat(String(report.forced.signal))} at ${ms(forcedAt!)}`,
    over
  ].filter((p) => p !== undefined)
  const subtitle = subtitleParts.join(" · ")
  out.push(text({ text: fit(title, width - 2 * pad, 15, true), x: pad, y: 26, size: 15, bold: true, tooltip: title.length > 0 ? title : undefined }))
  out.push(text({ text: fit(subtitle, width - 2 * pad, 12), x: pad, y: 46, size: 12, fill: "#555", tooltip: subtitle }))

  // Marks: their labels go in rows above the chart, never on top of each other.
  interface Mark { readonly at: number; readonly label: string; readonly color: string; readonly dash?: string; readonly strokeWidth?: number }
  const reasonTag = String(report.reason?._tag ?? "")
  const marks: Array<Mark> = [
    { at: 0, label: reasonTag === "signal" ? flat(String(report.reason.signal ?? "signal")) : `start (${flat(reasonTag) || "?"})`, color: "#b71c1c", strokeWidth: 1.5 }
  ]
  if (report.forced !== undefined) {
    marks.push({ at: forcedAt!, label: `${flat(String(report.forced.signal))}: forced at ${ms(forcedAt!)}`, color: "#7b1fa2", dash: "5 3", strokeWidth: 1.5 })
  }
  marks.push({ at: durationMs, label: `end ${ms(durationMs)}, exit ${finite(report.exitCode, NaN)}`, color: "#333", dash: "2 2" })
  if (timeoutMs > 0) marks.push({ at: timeoutMs, label: `hard deadline ${ms(timeoutMs)}`, color: "#b71c1c", strokeWidth: 2 })
  const markTop = 62
  const markRow = 15
  const rows: Array<Array<readonly [number, number]>> = []
  const placedMarks = marks.map((m) => {
    const label = fit(m.label, x1 - x0, SIZE)
    const w = textWidth(label, SIZE)
    const mx = x(m.at)
    const right = mx + 4 + w <= rightLimit
    const from = right ? mx + 4 : Math.max(pad, mx - 4 - w)
    const span = [from - 4, from + w + 4] as const
    let row = rows.findIndex((r) => r.every(([a, b]) => span[1] <= a || span[0] >= b))
    if (row < 0) row = rows.push([]) - 1
    rows[row]!.push(span)
    return { ...m, label, mx, row, right, from }
  })
  const chartTop = markTop + rows.length * markRow + 10

  // Phase groups, top to bottom.
  const headerH = 22
  const laneH = 17
  const body: Array<string> = []
  let y = chartTop
  for (const p of phases) {
    const color = Phase.isPhase(p.name) ? phaseColors[p.name] : "#b0bec5"
    const heading = `${p.number === undefined ? "" : `${p.number} `}${flat(p.name)}`
    const headingFit = fit(heading, x0 - 10 - pad, 12, true)
    body.push(text({ text: headingFit, x: pad, y: y + 15, size: 12, bold: true, tooltip: headingFit === heading ? undefined : heading }))
    const { shown, hidden } = chooseLanes(p.steps, maxLanes)
    const lanes = shown.length + (hidden.length > 0 ? 1 : 0)
    const groupH = headerH + lanes * laneH
    if (p.report === undefined) {
      body.push(text({ text: "not reached", x: x0 + 4, y: y + 15, fill: "#757575" }))
    } else {
      const r = p.report
      const start = nonNeg(r.startMs)
      const used = nonNeg(r.durationMs)
      const allowed = nonNeg(r.allowanceMs)
      const bandTop = y + 3
      const bandH = groupH - 6
      // The allowance, pale and dashed, behind everything of the phase; the time used, solid in the header.
      body.push(
        `<rect x="${c(x(start))}" y="${c(bandTop)}" width="${c(Math.max(1, x(start + allowed) - x(start)))}" height="${c(bandH)}" fill="${color}" fill-opacity="0.13" stroke="${color}" stroke-dasharray="4 3"/>`
      )
      body.push(
        `<rect x="${c(x(start))}" y="${c(y + 5)}" width="${c(Math.max(2, x(start + used) - x(start)))}" height="12" fill="${color}"/>`
      )
      const outcome = r.outcome === "ok" ? "" : ` · ${r.outcome === "timedOut" ? "timed out" : flat(String(r.outcome))}`
      const phaseLabel = `${ms(used)} of ${ms(allowed)}${outcome}`
      body.push(placeAfter(phaseLabel, x(start), x(start + used), y + 15, { x0, rightLimit, fill: "#222" }))
    }
    // One lane per step.
    let laneY = y + headerH
    for (const s of shown) {
      body.push(drawStep(s, laneY, { x, x0, rightLimit, pad, nameIndent, nameMax, id, laneH }))
      laneY += laneH
    }
    if (hidden.length > 0) {
      const label = `${hidden.length} more step${hidden.length === 1 ? "" : "s"}`
      const tip = `${label} in ${p.name}: ${countOutcomes(hidden)}`
      const parts = [`<g><title>${escapeXml(tip)}</title>`]
      parts.push(text({ text: label, x: pad + nameIndent, y: laneY + 12, fill: "#555" }))
      let lo = Infinity
      let hi = -Infinity
      for (const s of hidden) {
        const a = x(s.startMs)
        const b = Math.max(a + 1, x(s.startMs + s.durationMs))
        lo = Math.min(lo, a)
        hi = Math.max(hi, b)
        parts.push(
          `<rect x="${c(a)}" y="${c(laneY + 4)}" width="${c(b - a)}" height="9" fill="${outcomeColor(String(s.step.outcome))}" fill-opacity="0.7"/>`
        )
      }
      parts.push(placeAfter(countOutcomes(hidden), lo, hi, laneY + 12, { x0, rightLimit, fill: "#333" }))
      parts.push("</g>")
      body.push(parts.join(""))
      laneY += laneH
    }
    y += groupH
    if (p.name === "drain" && samples.length > 0) {
      const drainEnd = p.report === undefined ? undefined : nonNeg(p.report.startMs) + nonNeg(p.report.durationMs)
      const chart = drawSamples(samples, y, { x, x0, x1, pad, nameIndent, rightLimit, endMs: drainEnd })
      body.push(chart.svg)
      y += chart.height
    }
    body.push(`<line x1="${pad}" y1="${c(y)}" x2="${c(x1)}" y2="${c(y)}" stroke="#e0e0e0"/>`)
  }
  const chartBottom = y

  // Grid and axis.
  const step = tickStep(linearEnd, xb - x0, 80)
  const ticks: Array<number> = []
  for (let i = 0; i * step <= linearEnd * (1 + 1e-9); i++) ticks.push(i * step)
  if (broken) ticks.push(timeoutMs > linearEnd ? timeoutMs : fullEnd)
  const grid: Array<string> = []
  const axisY = chartBottom + 4
  const axis: Array<string> = [`<line x1="${c(x0)}" y1="${c(axisY)}" x2="${c(x1)}" y2="${c(axisY)}" stroke="#333"/>`]
  if (broken) {
    // The break: a gap in the axis with two slashes, faint edges across the chart.
    const bx = xb + breakGap / 2
    axis.push(`<rect x="${c(xb + 2)}" y="${c(axisY - 3)}" width="${c(breakGap - 4)}" height="6" fill="#ffffff"/>`)
    axis.push(`<path d="M${c(xb)} ${c(axisY + 5)}l4 -10M${c(xb + breakGap - 4)} ${c(axisY + 5)}l4 -10" stroke="#333"/>`)
    grid.push(`<path d="M${c(bx - 4)} ${c(chartTop)}V${c(chartBottom)}M${c(bx + 4)} ${c(chartTop)}V${c(chartBottom)}" stroke="#bdbdbd" stroke-dasharray="1 3"/>`)
  }
  let lastLabelEnd = -Infinity
  for (const t of ticks) {
    const tx = x(t)
    grid.push(`<line x1="${c(tx)}" y1="${c(chartTop)}" x2="${c(tx)}" y2="${c(chartBottom)}" stroke="#eeeeee"/>`)
    axis.push(`<line x1="${c(tx)}" y1="${c(axisY)}" x2="${c(tx)}" y2="${c(axisY + 4)}" stroke="#333"/>`)
    const label = t === 0 ? "0" : ms(t)
    const w = textWidth(label, SIZE)
    const left = Math.min(tx - w / 2, rightLimit - w)
    if (left < lastLabelEnd + 6) continue
    lastLabelEnd = left + w
    axis.push(text({ text: label, x: left + w / 2, y: chartBottom + 21, anchor: "middle", fill: "#333" }))
  }

  // Mark lines over the chart, labels above it.
  const markSvg = placedMarks.map((m) => {
    const labelY = markTop + m.row * markRow + 11
    return [
      `<line x1="${c(m.mx)}" y1="${c(labelY + 3)}" x2="${c(m.mx)}" y2="${c(chartBottom + 4)}" stroke="${m.color}"${
        m.strokeWidth ? ` stroke-width="${m.strokeWidth}"` : ""
      }${m.dash ? ` stroke-dasharray="${m.dash}"` : ""}/>`,
      text({ text: m.label, x: m.from, y: labelY, fill: m.color, bold: false, halo: true })
    ].join("")
  })

  // Legend, wrapped to the width.
  const legendTop = chartBottom + 40
  const legend: Array<string> = []
  const entries: Array<{ readonly swatch: string; readonly label: string }> = [
    ...(Object.keys(outcomeColors) as Array<StepOutcome>).map((o) => ({ swatch: swatchFor(o, id), label: outcomeWords[o] })),
    { swatch: `<rect width="14" height="10" y="1" fill="#9e9e9e" fill-opacity="0.13" stroke="#9e9e9e" stroke-dasharray="4 3"/>`, label: "phase allowance" },
    { swatch: `<rect width="14" height="10" y="1" fill="#9e9e9e"/>`, label: "phase time used" },
    { swatch: `<path d="M0 6H13M13 2V10" stroke="#555" stroke-dasharray="2 2"/>`, label: "step allowance" }
  ]
  let lx = pad
  let ly = legendTop
  for (const e of entries) {
    const w = 20 + textWidth(e.label, SIZE)
    if (lx + w > rightLimit && lx > pad) {
      lx = pad
      ly += 18
    }
    legend.push(`<g transform="translate(${c(lx)} ${c(ly - 10)})">${e.swatch}</g>`)
    legend.push(text({ text: e.label, x: lx + 19, y: ly, fill: "#333" }))
    lx += w + 16
  }
  const height = Math.ceil(ly + 14)

  const defs = `<defs><pattern id="${id}-running" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${outcomeColors.running}"/><rect width="2.5" height="6" fill="#ffffff" fill-opacity="0.55"/></pattern></defs>`
  const style = `<style>.halo{paint-order:stroke;stroke:#ffffff;stroke-width:3px;stroke-linejoin:round}</style>`
  const content = [
    defs,
    style,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...out,
    `<g class="grid">${grid.join("")}</g>`,
    `<g class="phases">${body.join("")}</g>`,
    `<g class="axis">${axis.join("")}</g>`,
    `<g class="marks">${markSvg.join("")}</g>`,
    `<g class="legend">${legend.join("")}</g>`
  ].join("\n")
  const description = [title, subtitle].filter((s) => s.length > 0).join(". ")
  return { content, width, height, title, description, id }
}

const sanitizeId = (s: string): string => {
  const cleaned = String(s).replace(/[^A-Za-z0-9_-]/g, "")
  return /^[A-Za-z_]/.test(cleaned) ? cleaned : `wd${cleaned}`
}

const swatchFor = (o: StepOutcome, id: string): string =>
  o === "skipped"
    ? `<rect width="14" height="10" y="1" fill="#ffffff" stroke="${outcomeColors.skipped}" stroke-width="1.5"/>`
    : `<rect width="14" height="10" y="1" fill="${o === "running" ? `url(#${id}-running)` : outcomeColors[o]}"/>`

/**
 * A label beside a bar: after its end when there is room, else before its
 * start, else inside the plot as far right as it fits (on a white halo).
 */
const placeAfter = (
  label: string,
  from: number,
  to: number,
  y: number,
  g: { readonly x0: number; readonly rightLimit: number; readonly fill: string }
): string => {
  const t = fit(label, g.rightLimit - g.x0 - 4, SIZE)
  const w = textWidth(t, SIZE)
  if (to + 4 + w <= g.rightLimit) return text({ text: t, x: to + 4, y, fill: g.fill, halo: true })
  if (from - 4 - w >= g.x0 + 2) return text({ text: t, x: from - 4, y, anchor: "end", fill: g.fill, halo: true })
  return text({ text: t, x: Math.max(g.x0 + 2, g.rightLimit - w), y, fill: g.fill, halo: true })
}

const drawStep = (
  s: StepBox,
  laneY: number,
  g: {
    readonly x: (t: number) => number
    readonly x0: number
    readonly rightLimit: number
    readonly pad: number
    readonly nameIndent: number
    readonly nameMax: number
    readonly id: string
    readonly laneH: number
  }
): string => {
  const outcome = String(s.step.outcome)
  const name = flat(String(s.step.name))
  const a = g.x(s.startMs)
  const b = Math.max(a + 2, g.x(s.startMs + s.durationMs))
  const allowEnd = g.x(s.startMs + s.allowanceMs)
  const midY = laneY + 8.5
  const tipLines = [
    String(s.step.name),
    `${s.phase}${s.step.index === undefined ? "" : ` step ${s.step.index}`}: ${outcomeWord(outcome)} after ${ms(s.durationMs)}${
      s.explicitAllowance ? `, allowed ${ms(s.allowanceMs)}` : outcome === "timedOut" ? "" : `, allowed up to ${ms(s.allowanceMs)}`
    }, started at ${ms(s.startMs)}`,
    ...(s.step.detail === undefined ? [] : [String(s.step.detail)])
  ]
  const parts = [`<g class="step"><title>${escapeXml(tipLines.join("\n"))}</title>`]
  const shownName = fit(name, g.nameMax, SIZE)
  parts.push(text({ text: shownName, x: g.pad + g.nameIndent, y: laneY + 12, fill: "#222" }))
  // A step that timed out ended at a limit of its own, which the report may
  // not say (its own timeout): then no whisker out to the phase's end.
  const allowanceKnown = s.explicitAllowance || outcome !== "timedOut"
  if (allowanceKnown && allowEnd > b + 1) {
    parts.push(
      `<path d="M${c(b)} ${c(midY)}H${c(allowEnd)}M${c(allowEnd)} ${c(midY - 4)}V${c(midY + 4)}" stroke="#555" stroke-opacity="0.6" stroke-dasharray="2 2" fill="none"/>`
    )
  }
  const fill = outcome === "running" ? `url(#${g.id}-running)` : outcome === "skipped" ? "#ffffff" : outcomeColor(outcome)
  const stroke = outcome === "skipped" ? ` stroke="${outcomeColors.skipped}" stroke-width="1.5"` : ""
  parts.push(`<rect x="${c(a)}" y="${c(laneY + 4)}" width="${c(b - a)}" height="9" fill="${fill}"${stroke}/>`)
  if (outcome === "running") {
    // Still going when the report was written: an open end.
    parts.push(`<path d="M${c(b)} ${c(laneY + 2)}l5 6.5l-5 6.5z" fill="${outcomeColors.running}"/>`)
  }
  const words = outcome === "ok" ? "" : ` ${outcomeWord(outcome)}`
  const of = s.explicitAllowance || outcome === "running" ? ` of ${ms(s.allowanceMs)}` : ""
  parts.push(placeAfter(`${ms(s.durationMs)}${words}${of}`, a, b + (outcome === "running" ? 6 : 0), laneY + 12, {
    x0: g.x0,
    rightLimit: g.rightLimit,
    fill: outcome === "ok" ? "#333" : outcomeColor(outcome)
  }))
  parts.push("</g>")
  return parts.join("")
}

const drawSamples = (
  samples: ReadonlyArray<Sample>,
  top: number,
  g: {
    readonly x: (t: number) => number
    readonly x0: number
    readonly x1: number
    readonly pad: number
    readonly nameIndent: number
    readonly rightLimit: number
    readonly endMs: number | undefined
  }
): { readonly svg: string; readonly height: number } => {
  const keys: Array<string> = []
  let max = 0
  for (const s of samples) {
    const inFlight = s.inFlight !== null && typeof s.inFlight === "object" ? s.inFlight : {}
    for (const [k, v] of Object.entries(inFlight)) {
      if (!keys.includes(k)) keys.push(k)
      max = Math.max(max, finite(v))
    }
  }
  const shownKeys = keys.slice(0, sampleColors.length)
  const chartTop = top + 8
  const chartH = 56
  const base = chartTop + chartH
  const scaleMax = Math.max(1, max)
  const yOf = (v: number) => base - (Math.min(Math.max(0, finite(v)), scaleMax) / scaleMax) * chartH
  const endMs = Math.max(samples[samples.length - 1]!.atMs, g.endMs ?? -Infinity)
  const parts: Array<string> = [`<g class="samples">`]
  parts.push(text({ text: "in flight", x: g.pad + g.nameIndent, y: chartTop + chartH / 2 + 4, fill: "#333" }))
  parts.push(text({ text: String(scaleMax), x: g.x0 - 6, y: chartTop + 8, anchor: "end", fill: "#555" }))
  parts.push(text({ text: "0", x: g.x0 - 6, y: base, anchor: "end", fill: "#555" }))
  parts.push(`<line x1="${c(g.x0)}" y1="${c(base)}" x2="${c(g.x1)}" y2="${c(base)}" stroke="#bdbdbd"/>`)
  parts.push(`<line x1="${c(g.x0)}" y1="${c(chartTop)}" x2="${c(g.x0)}" y2="${c(base)}" stroke="#bdbdbd"/>`)
  shownKeys.forEach((k, i) => {
    let d = ""
    let last: number | undefined
    for (const s of samples) {
      const v = finite((s.inFlight as Record<string, number> | undefined)?.[k])
      const sx = g.x(s.atMs)
      const sy = yOf(v)
      if (last === undefined) d += `M${c(sx)} ${c(sy)}`
      else d += `H${c(sx)}V${c(sy)}`
      last = sy
    }
    d += `H${c(g.x(endMs))}`
    parts.push(`<path d="${d}" fill="none" stroke="${sampleColors[i]}" stroke-width="1.5"/>`)
  })
  // The keys, wrapped under the chart.
  let lx = g.x0
  let ly = base + 17
  const labels = shownKeys.map((k, i) => ({ k, i }))
  const hiddenKeys = keys.length - shownKeys.length
  for (const { k, i } of labels) {
    const peak = Math.max(...samples.map((s) => finite((s.inFlight as Record<string, number> | undefined)?.[k])))
    const label = fit(`${flat(k)} (peak ${peak})`, g.rightLimit - g.x0 - 20, SIZE)
    const w = 18 + textWidth(label, SIZE)
    if (lx + w > g.rightLimit && lx > g.x0) {
      lx = g.x0
      ly += 16
    }
    parts.push(`<rect x="${c(lx)}" y="${c(ly - 8)}" width="12" height="3" fill="${sampleColors[i]}"/>`)
    parts.push(text({ text: label, x: lx + 16, y: ly, fill: "#333", tooltip: k }))
    lx += w + 14
  }
  if (hiddenKeys > 0) {
    const label = `and ${hiddenKeys} more`
    const w = textWidth(label, SIZE)
    if (lx + w > g.rightLimit && lx > g.x0) {
      lx = g.x0
      ly += 16
    }
    parts.push(text({ text: label, x: lx, y: ly, fill: "#555", tooltip: keys.slice(shownKeys.length).join(", ") }))
  }
  parts.push("</g>")
  return { svg: parts.join(""), height: ly - top + 10 }
}

const open = (l: ReturnType<typeof layout>, extra = "") =>
  `<svg xmlns="http://www.w3.org/2000/svg"${extra} width="${l.width}" height="${l.height}" viewBox="0 0 ${l.width} ${l.height}" role="img" aria-labelledby="${l.id}-title ${l.id}-desc" font-family="${FONT}" font-size="${SIZE}">\n<title id="${l.id}-title">${
    escapeXml(l.title)
  }</title>\n<desc id="${l.id}-desc">${escapeXml(l.description)}</desc>\n`

/**
 * Draw a report as an SVG timeline (a complete, standalone document).
 *
 * ```ts
 * const report = yield* Shutdown.awaitReport
 * fs.writeFileSync("shutdown.svg", ShutdownTimeline.toSvg(report))
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const toSvg = (report: Report, options: Options = {}): string => {
  const l = layout(report, options)
  return `${open(l)}${l.content}\n</svg>\n`
}

/**
 * Draw several reports stacked in one SVG, the first on top (a log with one
 * report per restart, say).
 *
 * @since 0.1.0
 * @category combinators
 */
export const toSvgAll = (reports: ReadonlyArray<Report>, options: Options = {}): string => {
  const prefix = sanitizeId(options.idPrefix ?? defaults.idPrefix)
  const gap = 24
  let y = 0
  let width = 0
  const inner: Array<string> = []
  reports.forEach((report, i) => {
    const l = layout(report, { ...options, idPrefix: `${prefix}${i + 1}` })
    inner.push(`<svg x="0" y="${y}" width="${l.width}" height="${l.height}" viewBox="0 0 ${l.width} ${l.height}" role="img" aria-labelledby="${l.id}-title ${l.id}-desc">\n<title id="${l.id}-title">${escapeXml(l.title)}</title>\n<desc id="${l.id}-desc">${escapeXml(l.description)}</desc>\n${l.content}\n</svg>`)
    y += l.height + gap
    width = Math.max(width, l.width)
  })
  const height = Math.max(1, y - gap)
  width = Math.max(width, 1)
  const title = `${reports.length} shutdown${reports.length === 1 ? "" : "s"}`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-labelledby="${prefix}-all-title" font-family="${FONT}" font-size="${SIZE}">\n<title id="${prefix}-all-title">${title}</title>\n${inner.join("\n")}\n</svg>\n`
}
