/**
 * Configuration of winddown: the one error every bad option or environment
 * variable is reported with, and the `WINDDOWN_*` variables read through
 * effect's `Config`, so any `ConfigProvider` works (`ConfigProvider.fromUnknown`
 * in tests, a `.env` loader, a secrets store).
 *
 * Every value is validated when the layer is built: a bad one fails with a
 * `ShutdownConfigError` whose message is one line naming the option, or the
 * variable that set it, and the value, before anything starts.
 *
 * @since 0.1.0
 */
import { Config, Data, Effect, Option } from "effect"
import { parseMillis } from "./internal/duration.ts"

/**
 * An option or environment variable with a value that cannot be used. The
 * message is one line, and so is the `stack`: a refusal is the user's input,
 * not a bug, so no stack frames are printed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShutdownConfigError extends Data.TaggedError("ShutdownConfigError")<{
  /** The option, e.g. `timeout` (for a variable: the option it sets). */
  readonly option?: string | undefined
  /** The environment variable the value came from, if any. */
  readonly variable?: string | undefined
  readonly value: string
  readonly message: string
}> {
  constructor(args: {
    readonly option?: string | undefined
    readonly variable?: string | undefined
    readonly value: string
    readonly message: string
  }) {
    super(args)
    this.stack = `${this._tag}: ${this.message}`
  }
}

/**
 * The variables, by the option each sets. Durations take a unit: `25s`,
 * `500ms`, `1.5 s`, `2m`, `25 seconds`.
 *
 * @since 0.1.0
 * @category models
 */
export const variables = {
  timeout: "WINDDOWN_TIMEOUT",
  readiness: "WINDDOWN_READINESS",
  preStop: "WINDDOWN_PRE_STOP",
  stopAccepting: "WINDDOWN_STOP_ACCEPTING",
  drain: "WINDDOWN_DRAIN",
  cleanup: "WINDDOWN_CLEANUP",
  flush: "WINDDOWN_FLUSH",
  stepTimeout: "WINDDOWN_STEP_TIMEOUT",
  forcedStepTimeout: "WINDDOWN_FORCED_STEP_TIMEOUT",
  progressInterval: "WINDDOWN_PROGRESS_INTERVAL",
  exitGrace: "WINDDOWN_EXIT_GRACE",
  signalExit: "WINDDOWN_SIGNAL_EXIT",
  signals: "WINDDOWN_SIGNALS",
  reportJson: "WINDDOWN_REPORT_JSON",
  reportSummary: "WINDDOWN_REPORT_SUMMARY",
  reportTo: "WINDDOWN_REPORT_TO",
  handleUncaught: "WINDDOWN_HANDLE_UNCAUGHT"
} as const

/**
 * What the environment set; absent variables are absent here.
 *
 * @since 0.1.0
 * @category models
 */
export interface FromEnv {
  readonly timeout?: string
  readonly readiness?: string
  readonly preStop?: string
  readonly stopAccepting?: string
  readonly drain?: string
  readonly cleanup?: string
  readonly flush?: string
  readonly stepTimeout?: string
  readonly forcedStepTimeout?: string
  readonly progressInterval?: string
  readonly exitGrace?: string
  readonly signalExit?: "success" | "conventional"
  readonly signals?: ReadonlyArray<string>
  readonly reportJson?: boolean
  readonly reportSummary?: boolean
  readonly reportTo?: "stdout" | "stderr" | "logger"
  readonly handleUncaught?: boolean
}

const sourcesKey: unique symbol = Symbol.for("winddown/ShutdownConfig/sources")

/**
 * The variable an option of `options` was read from, if it was (so errors
 * found later, e.g. an impossible budget, name what the user set).
 *
 * @since 0.1.0
 * @category combinators
 */
export const sourceOf = (options: object, option: string): string | undefined =>
  (options as { readonly [sourcesKey]?: Readonly<Record<string, string>> })[sourcesKey]?.[option]

const withSources = <A extends object>(options: A, sources: Readonly<Record<string, string>>): A =>
  Object.assign({ ...options }, { [sourcesKey]: { ...(options as any)[sourcesKey], ...sources } })

/**
 * Put the values the environment set over `defaults`, remembering which
 * variable set each (see {@link sourceOf}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const merge = <A extends object>(defaults: A, env: object): A => {
  const sources: Record<string, string> = {}
  for (const key of Object.keys(env)) sources[key] = variables[key as keyof typeof variables]
  return withSources({ ...defaults, ...env } as A, sources)
}

const durationKeys = [
  "timeout",
  "readiness",
  "stopAccepting",
  "drain",
  "cleanup",
  "flush",
  "stepTimeout",
  "forcedStepTimeout",
  "progressInterval",
  "exitGrace"
] as const

/** The signals winddown can listen to. */
const knownSignals = ["SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK", "SIGUSR2", "SIGQUIT"]

const read = (variable: string): Effect.Effect<string | undefined, ShutdownConfigError> =>
  (Config.option(Config.String(variable)) as Effect.Effect<Option.Option<string>, Config.ConfigError>).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.mapError((e) =>
      new ShutdownConfigError({ variable, value: "", message: `${variable}: ${e.message.split("\n")[0]}` })
    )
  )

const bad = (variable: string, value: string, expected: string) =>
  Effect.fail(
    new ShutdownConfigError({
      variable,
      value,
      message: `${variable}=${JSON.stringify(value)}: expected ${expected}`
    })
  )

const durationText = (variable: string, value: string) =>
  parseMillis(value) === undefined
    ? bad(variable, value, "a duration with a unit, like 25s, 500ms or 2m")
    : Effect.succeed(value.trim())

const booleanValue = (variable: string, value: string) => {
  const v = value.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return Effect.succeed(true)
  if (["0", "false", "no", "off"].includes(v)) return Effect.succeed(false)
  return bad(variable, value, "true or false")
}

/**
 * Read and check the syntax of every `WINDDOWN_*` variable through the
 * current `ConfigProvider`. Durations stay strings; the layer validates them
 * with the other options and names the variable if one cannot be used.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromEnv: Effect.Effect<FromEnv, ShutdownConfigError> = Effect.gen(function*() {
  const out: Record<string, unknown> = {}
  for (const key of durationKeys) {
    const value = yield* read(variables[key])
    if (value !== undefined) out[key] = yield* durationText(variables[key], value)
  }
  const preStop = yield* read(variables.preStop)
  if (preStop !== undefined) {
    out.preStop = preStop.trim() === "auto" ? "auto" : yield* durationText(variables.preStop, preStop)
  }
  const signalExit = yield* read(variables.signalExit)
  if (signalExit !== undefined) {
    const v = signalExit.trim()
    if (v !== "success" && v !== "conventional") return yield* bad(variables.signalExit, signalExit, "success or conventional")
    out.signalExit = v
  }
  const reportTo = yield* read(variables.reportTo)
  if (reportTo !== undefined) {
    const v = reportTo.trim()
    if (v !== "stdout" && v !== "stderr" && v !== "logger") {
      return yield* bad(variables.reportTo, reportTo, "stdout, stderr or logger")
    }
    out.reportTo = v
  }
  const signals = yield* read(variables.signals)
  if (signals !== undefined) {
    const list = signals.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0)
    const unknown = list.find((s) => !knownSignals.includes(s))
    if (list.length === 0 || unknown !== undefined) {
      return yield* bad(variables.signals, signals, `a comma-separated list of ${knownSignals.join(", ")}`)
    }
    out.signals = Array.from(new Set(list))
  }
  for (const key of ["reportJson", "reportSummary", "handleUncaught"] as const) {
    const value = yield* read(variables[key])
    if (value !== undefined) out[key] = yield* booleanValue(variables[key], value)
  }
  return out as FromEnv
})

/**
 * Variables that are set but empty (`WINDDOWN_TIMEOUT=`): a mistake, not
 * "unset" (effect's environment provider reads an empty value as missing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkEmpty = (env: Readonly<Record<string, string | undefined>>): ShutdownConfigError | undefined => {
  for (const variable of Object.values(variables)) {
    if (env[variable] !== undefined && env[variable]!.trim() === "") {
      return new ShutdownConfigError({ variable, value: env[variable]!, message: `${variable} is set but empty: unset it or give it a value` })
    }
  }
  return undefined
}
