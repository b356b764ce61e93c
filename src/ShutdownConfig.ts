/**
 * Shutdown options from the environment (`WINDDOWN_TIMEOUT=25s` ...), read
 * through effect's `Config` so tests can use `ConfigProvider.fromUnknown`.
 * Every value is validated when the layer is built: a bad one fails with a
 * `ShutdownConfigError` naming the variable and the value, before the service
 * starts.
 *
 * @since 0.1.0
 */
import { Config, Data, Effect, Option } from "effect"
import { parseMillis } from "./internal/duration.ts"

/**
 * A variable with a value that cannot be used.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShutdownConfigError extends Data.TaggedError("ShutdownConfigError")<{
  readonly variable: string
  readonly value: string
  readonly message: string
}> {}

/**
 * The variables, by the option each sets. Durations take a unit: `25s`,
 * `500ms`, `1.5 s`, `2m`.
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
  signalExit: "WINDDOWN_SIGNAL_EXIT",
  signals: "WINDDOWN_SIGNALS",
  reportJson: "WINDDOWN_REPORT_JSON",
  reportSummary: "WINDDOWN_REPORT_SUMMARY",
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
  readonly signalExit?: "success" | "conventional"
  readonly signals?: ReadonlyArray<string>
  readonly reportJson?: boolean
  readonly reportSummary?: boolean
  readonly handleUncaught?: boolean
}

const durationKeys = [
  "timeout", "readiness", "stopAccepting", "drain", "cleanup", "flush", "stepTimeout", "forcedStepTimeout", "progressInterval"
] as const

const read = (variable: string): Effect.Effect<string | undefined, ShutdownConfigError> =>
  (Config.option(Config.String(variable)) as Effect.Effect<Option.Option<string>, Config.ConfigError>).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.mapError((e) => new ShutdownConfigError({ variable, value: "", message: `${variable}: ${e.message}` }))
  )

const bad = (variable: string, value: string, expected: string) =>
  Effect.fail(new ShutdownConfigError({ variable, value, message: `${variable}=${JSON.stringify(value)}: expected ${expected}` }))

const durationText = (variable: string, value: string) =>
  parseMillis(value) === undefined ? bad(variable, value, "a duration with a unit, like 25s or 500ms") : Effect.succeed(value)

const booleanValue = (variable: string, value: string) => {
  const v = value.trim().toLowerCase()
  if (["1", "true", "yes", "on"].includes(v)) return Effect.succeed(true)
  if (["0", "false", "no", "off"].includes(v)) return Effect.succeed(false)
  return bad(variable, value, "true or false")
}

/**
 * Read and validate every variable. Durations stay strings (validated), so
 * the result can be spread into `NodeShutdown.layer` options.
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
    if (signalExit !== "success" && signalExit !== "conventional") {
      return yield* bad(variables.signalExit, signalExit, "success or conventional")
    }
    out.signalExit = signalExit
  }
  const signals = yield* read(variables.signals)
  if (signals !== undefined) {
    const list = signals.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0)
    const known = ["SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK", "SIGUSR2", "SIGQUIT"]
    const unknown = list.find((s) => !known.includes(s))
    if (list.length === 0 || unknown !== undefined) {
      return yield* bad(variables.signals, signals, `a comma-separated list of ${known.join(", ")}`)
    }
    out.signals = list
  }
  for (const key of ["reportJson", "reportSummary", "handleUncaught"] as const) {
    const value = yield* read(variables[key])
    if (value !== undefined) out[key] = yield* booleanValue(variables[key], value)
  }
  return out as FromEnv
})
