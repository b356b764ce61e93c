/**
 * The demo's own settings from the environment, validated at startup: a bad
 * value stops the service before it listens, with the variable named.
 */
import { Config, Data, Effect, Option } from "effect"

export class DemoConfigError extends Data.TaggedError("DemoConfigError")<{
  readonly variable: string
  readonly value: string
  readonly message: string
}> {}

export interface DemoConfig {
  readonly port: number
  readonly host: string
  readonly dataDir: string
  readonly workers: number
  /** A separate port for the probes (answers through the whole shutdown); none: probes on the app port. */
  readonly healthPort: number | undefined
}

export const defaults = { port: 3000, host: "0.0.0.0", dataDir: "./data", workers: 4 } as const

const read = (variable: string) =>
  (Config.option(Config.String(variable)) as Effect.Effect<Option.Option<string>, Config.ConfigError>).pipe(
    Effect.map(Option.getOrUndefined),
    Effect.orDie
  )

const integer = (variable: string, fallback: number, min: number, max: number) =>
  Effect.flatMap(read(variable), (value) => {
    if (value === undefined) return Effect.succeed(fallback)
    const n = Number(value)
    return Number.isInteger(n) && n >= min && n <= max && value.trim() !== ""
      ? Effect.succeed(n)
      : Effect.fail(new DemoConfigError({
        variable,
        value,
        message: `${variable}=${JSON.stringify(value)}: expected a whole number from ${min} to ${max}`
      }))
  })

export const load: Effect.Effect<DemoConfig, DemoConfigError> = Effect.gen(function*() {
  return {
    port: yield* integer("PORT", defaults.port, 0, 65535),
    host: (yield* read("HOST")) ?? defaults.host,
    dataDir: (yield* read("DATA_DIR")) ?? defaults.dataDir,
    workers: yield* integer("WORKERS", defaults.workers, 1, 256),
    healthPort: (yield* read("HEALTH_PORT")) === undefined ? undefined : yield* integer("HEALTH_PORT", 0, 0, 65535)
  }
})
