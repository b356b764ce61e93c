/**
 * The demo's settings from the environment, validated with `Schema` before
 * the service touches its data or listens: a bad value stops it with one line
 * naming the variable and the value (exit 78). A variable set but empty
 * (`PORT=`) is a bad value, not "unset": run the demo with a ConfigProvider
 * that keeps empty strings (`main.ts` does).
 *
 * `DATABASE_URL` switches the jobs from the journal in `DATA_DIR` to a
 * PostgreSQL table shared by every replica (`JOBS_TABLE`, `JOBS_LEASE_MS`).
 * Its syntax is checked here; whether the server answers is checked at
 * startup (`PgJobs.prepare`). A password in it is never printed.
 *
 * The `WINDDOWN_*` variables belong to the library (`NodeShutdown.layerConfig`
 * reads them when the layer is built); {@link checkShutdown} runs the same
 * checks earlier, so that they too refuse before anything starts.
 */
import { NodeShutdown } from "winddown/node"
import { Config, ConfigProvider, Effect, Option, Redacted, Result, Schema, SchemaTransformation } from "effect"
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
  /** With `DATABASE_URL`: the jobs live in PostgreSQL, shared by every replica (no data directory, no lock). */
  readonly database?: Database
}

/** Where the jobs live in PostgreSQL mode. */
export interface Database {
  /** `DATABASE_URL` as given: it may hold a password, so it is only handed to the driver. */
  readonly url: Redacted.Redacted<string>
  /** `DATABASE_URL` for messages: a password replaced by `***`. */
  readonly shown: string
  /** `host:port`, for messages. */
  readonly address: string
  /** The database's name (the user's name when the URL has none). */
  readonly name: string
  /** `JOBS_TABLE`. */
  readonly table: string
  /** `JOBS_LEASE_MS`: a claim nobody renewed for this long is taken over by another replica. */
  readonly leaseMs: number
}

export const defaults = { port: 3000, host: "0.0.0.0", dataDir: "./data", workers: 4 } as const

/** Defaults of PostgreSQL mode (`DATABASE_URL` set). */
export const databaseDefaults = { table: "jobs", leaseMs: 10_000 } as const

export const variables = {
  port: "PORT",
  host: "HOST",
  dataDir: "DATA_DIR",
  workers: "WORKERS",
  healthPort: "HEALTH_PORT",
  database: "DATABASE_URL",
  table: "JOBS_TABLE",
  leaseMs: "JOBS_LEASE_MS"
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

/** Lower-case SQL names only: they are the same quoted or not. Short enough for the index named after it. */
const TableName = Schema.String.check(
  Schema.makeFilter((s: string) =>
    /^[a-z_][a-z0-9_]{0,49}$/.test(s)
      ? undefined
      : "expected a lower-case SQL name (a-z, 0-9 and _, not starting with a digit, at most 50 characters)"
  )
)

const LeaseMs = wholeNumber(1_000, 3_600_000)

/**
 * `DATABASE_URL` for messages: whatever stands between `://` and the last `@`
 * keeps its user name and loses the rest (`postgres://app:***@db/x`), and a
 * `password=` parameter its value. It errs on the side of hiding: a password
 * holding an unencoded `/` or `@` is still hidden.
 */
export const redactUrl = (raw: string): string => {
  let shown = raw
  const scheme = raw.indexOf("://")
  const at = raw.lastIndexOf("@")
  if (scheme !== -1 && at > scheme) {
    const userinfo = raw.slice(scheme + 3, at)
    const colon = userinfo.indexOf(":")
    if (colon !== -1) shown = `${raw.slice(0, scheme + 3)}${userinfo.slice(0, colon)}:***${raw.slice(at)}`
  }
  return shown.replace(/([?&]password=)[^&#]*/gi, "$1***")
}

const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

const decodes = (s: string) => {
  try {
    decodeURIComponent(s)
    return true
  } catch {
    return false
  }
}

const portNumber = (s: string) => /^[0-9]{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= 65535

/**
 * Check `DATABASE_URL` the way the driver (`@effect/sql-pg`) will read it, so
 * that a URL it cannot use is refused at startup with one line rather than at
 * the first query. Whether the server answers is for `PgJobs.prepare`.
 */
export const parseDatabaseUrl = (
  raw: string
): { readonly address: string; readonly name: string } | { readonly problem: string } => {
  const expected = "expected a URL like postgres://user@host:5432/database"
  if (raw === "") return { problem: `${expected} (it is set but empty: unset it to keep the jobs in DATA_DIR)` }
  if (/[\s\x00-\x1f\x7f]/.test(raw)) return { problem: `${expected}, without spaces or control characters` }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { problem: expected }
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    return { problem: `expected a postgres:// or postgresql:// URL, not ${url.protocol.slice(0, 20)}//` }
  }
  if (url.port !== "" && !portNumber(url.port)) return { problem: `expected a port from 1 to 65535, not ${url.port}` }
  for (const [part, value] of [["user name", url.username], ["password", url.password], ["database name", url.pathname]] as const) {
    if (!decodes(value)) return { problem: `the ${part} in it is not valid percent-encoding` }
  }
  const params = url.searchParams
  const portParam = params.get("port")
  if (portParam !== null && !portNumber(portParam)) return { problem: `port=${portParam.slice(0, 20)}: expected a port from 1 to 65535` }
  const sslmode = params.get("sslmode")
  if (sslmode !== null && !sslModes.includes(sslmode)) {
    return { problem: `sslmode=${sslmode.slice(0, 20)}: expected one of ${sslModes.join(", ")}` }
  }
  const connectTimeout = params.get("connect_timeout")
  if (connectTimeout !== null && !/^[0-9]{1,6}$/.test(connectTimeout)) {
    return { problem: `connect_timeout=${connectTimeout.slice(0, 20)}: expected whole seconds` }
  }
  const host = params.get("host") ?? (url.hostname === "" ? "localhost" : url.hostname)
  const port = portParam ?? (url.port === "" ? "5432" : url.port)
  const user = params.get("user") ?? decodeURIComponent(url.username)
  const name = params.get("dbname") ?? (decodeURIComponent(url.pathname.replace(/^\//, "")) || user || "(the user's name)")
  return { address: `${host}:${port}`, name }
}

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
  const database = yield* loadDatabase
  return { port, host, dataDir, workers, healthPort, ...(database === undefined ? {} : { database }) }
})

/** `DATABASE_URL` and the variables that only mean something with it. */
const loadDatabase: Effect.Effect<Database | undefined, Refusal> = Effect.gen(function*() {
  const raw = yield* read(variables.database)
  if (raw === undefined) {
    // A fleet deployed with these but without the URL would run each replica on its own journal.
    for (const variable of [variables.table, variables.leaseMs]) {
      const value = yield* read(variable)
      if (value !== undefined) {
        return yield* Effect.fail(setting(variable, value, `only used with ${variables.database} (PostgreSQL), which is not set`))
      }
    }
    return undefined
  }
  const shown = redactUrl(raw)
  const parsed = parseDatabaseUrl(raw)
  if ("problem" in parsed) return yield* Effect.fail(setting(variables.database, shown, parsed.problem))
  const table = yield* decode(variables.table, TableName, databaseDefaults.table)
  const leaseMs = yield* decode(variables.leaseMs, LeaseMs, databaseDefaults.leaseMs)
  return { url: Redacted.make(raw), shown, address: parsed.address, name: parsed.name, table, leaseMs }
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
