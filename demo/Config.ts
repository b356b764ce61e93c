/**
 * The demo's settings from the environment, validated with `Schema` before
 * the service touches its data or listens: a bad value stops it with one line
 * naming the variable and the value (exit 78). A variable set but empty
 * (`PORT=`) is a bad value, not "unset": run the demo with a ConfigProvider
 * that keeps empty strings (`main.ts` does).
 *
 * The `WINDDOWN_*` variables belong to the library (`NodeShutdown.layerConfig`
 * reads them when the layer is built); {@link checkShutdown} runs the same
 * checks earlier, so that they too refuse before anything starts.
 */
import { NodeShutdown } from "winddown/node"
import { Config, ConfigProvider, Effect, Option, Result, Schema, SchemaTransformation } from "effect"
import * as net from "node:net"
import { describeIssue } from "./JobStore.ts"
import { Refusal, setting, show } from "./Refusal.ts"

export interface DemoConfig {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly workers: number
  /** A separate port for the probes (answers through the whole shutdown); none: probes on the app port. */
  readonly healthPort: number | undefined
}

export const defaults = { port: 3000, host: "0.0.0.0", dataDir: "./data", workers: 4 } as const

export const variables = {
  port: "PORT",
  host: "HOST",
  dataDir: "DATA_DIR",
  workers: "WORKERS",
  healthPort: "HEALTH_PORT"
} as const

/** Digits only: no sign, spaces, hex, exponent or fraction. */
const wholeNumber = (min: number, max: number) =>
  Schema.String.check(
    Schema.makeFilter((s: string) =>
      /^[0-9]{1,10}$/.test(s) && Number(s) >= min && Number(s) <= max
        ? undefined
        : `expected a whole number from ${min} to ${max}`
    )
  ).pipe(Schema.decodeTo(Schema.Int, SchemaTransformation.numberFromString))

const Port = wholeNumber(0, 65535)
const Workers = wholeNumber(1, 256)

const hostLabel = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/
const isHostName = (s: string) => {
  const labels = (s.endsWith(".") ? s.slice(0, -1) : s).split(".")
  return s.length <= 253 && labels.every((l) => hostLabel.test(l)) && !/^[0-9]+$/.test(labels[labels.length - 1]!)
}
const Host = Schema.String.check(
  Schema.makeFilter((s: string) =>
    net.isIP(s) !== 0 || isHostName(s) ? undefined : "expected an IP address (0.0.0.0, 127.0.0.1, ::) or a host name"
  )
)

const DataDir = Schema.String.check(
  Schema.makeFilter((s: string) =>
    s.length === 0 || s.length > 4096 || s.trim() !== s || /[\x00-\x1f]/.test(s)
      ? "expected a directory path, without leading or trailing spaces"
      : undefined
  )
)

/** The raw value: `undefined` when unset, `""` when set but empty (with a provider that keeps empty strings). */
const read = (variable: string): Effect.Effect<string | undefined> =>
  (Config.option(Config.String(variable)) as Effect.Effect<Option.Option<string>, Config.ConfigError>).pipe(
    Effect.map(Option.getOrUndefined),
    // A variable that cannot be read as a string does not exist in an environment.
    Effect.orElseSucceed(() => undefined)
  )

const decode = <A, F>(variable: string, schema: Schema.Codec<A, string>, fallback: F) =>
  Effect.flatMap(read(variable), (raw): Effect.Effect<A | F, Refusal> => {
    if (raw === undefined) return Effect.succeed(fallback)
    const result = Schema.decodeUnknownResult(schema)(raw)
    if (Result.isSuccess(result)) return Effect.succeed(result.success)
    const empty = raw === "" ? ` (it is set but empty: unset it for the default, ${JSON.stringify(fallback ?? "none")})` : ""
    return Effect.fail(setting(variable, raw, `${describeIssue(result.failure.issue)}${empty}`))
  })

/** Read and validate the demo's variables; the first bad one refuses. */
export const load: Effect.Effect<DemoConfig, Refusal> = Effect.gen(function*() {
  const port = yield* decode(variables.port, Port, defaults.port)
  const host = yield* decode(variables.host, Host, defaults.host)
  const dataDir = yield* decode(variables.dataDir, DataDir, defaults.dataDir)
  const workers = yield* decode(variables.workers, Workers, defaults.workers)
  const healthPort = yield* decode(variables.healthPort, Port, undefined)
  if (healthPort !== undefined && healthPort !== 0 && healthPort === port) {
    return yield* Effect.fail(
      setting(variables.healthPort, String(healthPort), `must differ from ${show(variables.port, String(port))}: the probes need a port of their own`)
    )
  }
  return { port, host, dataDir, workers, healthPort }
})

/** The demo's own defaults for the Shutdown layer; `WINDDOWN_*` variables override them. */
export const shutdownDefaults: NodeShutdown.Options = { timeout: "25 seconds", reportSummary: true }

const fromLibrary = (e: { readonly message: string }) => new Refusal({ reason: "setting", message: e.message })

/**
 * The checks `NodeShutdown.layerConfig(shutdownDefaults)` makes when it is
 * built, made now: the variables, then the budget they add up to.
 */
export const checkShutdown: Effect.Effect<void, Refusal> = Effect.mapError(
  NodeShutdown.checkConfig(shutdownDefaults),
  fromLibrary
)

/** Every setting, the demo's and the library's: the first bad one refuses. */
export const check: Effect.Effect<DemoConfig, Refusal> = Effect.gen(function*() {
  const config = yield* load
  yield* checkShutdown
  return config
})

/** The environment as `main.ts` reads it: a variable set but empty is a value (`PORT=` is refused, not taken as unset). */
export const environment = (env?: Record<string, string>) =>
  ConfigProvider.fromEnv({ preserveEmptyStrings: true, ...(env === undefined ? {} : { env }) })
