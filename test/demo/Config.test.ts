import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Redacted } from "effect"
import * as DemoConfig from "../../demo/Config.ts"
import { exitCodes, line, Refusal, show } from "../../demo/Refusal.ts"
import { badSettings } from "../support/badSettings.ts"

const check = (env: Record<string, string>) =>
  DemoConfig.check.pipe(Effect.provideService(ConfigProvider.ConfigProvider, DemoConfig.environment(env)))

describe("demo settings", () => {
  it.effect("unset: the defaults", () =>
    Effect.gen(function*() {
      const config = yield* check({})
      assert.deepStrictEqual(config, { ...DemoConfig.defaults, healthPort: undefined })
    }))

  it.effect("good values are read", () =>
    Effect.gen(function*() {
      const config = yield* check({ PORT: "0", HOST: "::1", DATA_DIR: "/var/lib/demo", WORKERS: "256", HEALTH_PORT: "09000" })
      assert.deepStrictEqual(config, { port: 0, host: "::1", dataDir: "/var/lib/demo", workers: 256, healthPort: 9000 })
      for (const host of ["localhost", "127.0.0.1", "0.0.0.0", "::", "db-1.internal.example.com", "example.com."]) {
        assert.strictEqual((yield* check({ HOST: host })).host, host)
      }
    }))

  it.effect(`every bad value (${badSettings.length}, generated) is refused: one line naming the variable and the value, exit ${exitCodes.setting}`, () =>
    Effect.gen(function*() {
      for (const { namesVariable, value, variable } of badSettings) {
        const error = yield* Effect.flip(check({ [variable]: value }))
        const context = `${variable}=${JSON.stringify(value)} -> ${error.message}`
        assert.instanceOf(error, Refusal, context)
        assert.strictEqual(error.reason, "setting", context)
        assert.strictEqual(exitCodes[error.reason], 78)
        const printed = line(error)
        assert.notInclude(printed, "\n", context)
        assert.notMatch(printed, /\bat .*\.ts:\d+/, context)
        if (namesVariable) assert.include(printed, show(variable, value), context)
      }
    }))

  it.effect("issue 12 #5: a variable set but empty is refused, not taken as unset", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(check({ PORT: "" }))
      assert.strictEqual(
        error.message,
        `PORT="": expected a whole number from 0 to 65535 (it is set but empty: unset it for the default, 3000)`
      )
    }))

  it.effect("HEALTH_PORT equal to PORT is refused by name; both 0 (any free port) is fine", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(check({ PORT: "3000", HEALTH_PORT: "3000" }))
      assert.strictEqual(error.message, `HEALTH_PORT="3000": must differ from PORT="3000": the probes need a port of their own`)
      const defaultPort = yield* Effect.flip(check({ HEALTH_PORT: "3000" }))
      assert.include(defaultPort.message, "must differ from PORT")
      assert.strictEqual((yield* check({ PORT: "0", HEALTH_PORT: "0" })).healthPort, 0)
    }))

  it.effect("the first bad variable is the one reported", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(check({ PORT: "x", WORKERS: "y" }))
      assert.include(error.message, `PORT="x"`)
    }))

  it.effect("DATABASE_URL: the jobs go to PostgreSQL, in JOBS_TABLE (jobs), with a lease of JOBS_LEASE_MS (10 s)", () =>
    Effect.gen(function*() {
      const config = yield* check({ DATABASE_URL: "postgres://app@db.internal:6543/orders" })
      const database = config.database!
      assert.deepStrictEqual(
        [database.shown, database.address, database.name, database.table, database.leaseMs, Redacted.value(database.url)],
        ["postgres://app@db.internal:6543/orders", "db.internal:6543", "orders", "jobs", 10_000, "postgres://app@db.internal:6543/orders"]
      )
      const other = (yield* check({
        DATABASE_URL: "postgresql:///test?host=/var/run/postgresql&user=app",
        JOBS_TABLE: "fleet_jobs_2",
        JOBS_LEASE_MS: "2000"
      })).database!
      assert.deepStrictEqual([other.address, other.name, other.table, other.leaseMs], ["/var/run/postgresql:5432", "test", "fleet_jobs_2", 2_000])
      // Without it: no database, and the settings are what they always were.
      assert.notProperty(yield* check({}), "database")
    }))

  it.effect("DATABASE_URL: a password never reaches a message", () =>
    Effect.gen(function*() {
      for (
        const [url, shown] of [
          ["postgres://app:s3cret@db/test?sslmode=maybe", `DATABASE_URL="postgres://app:***@db/test?sslmode=maybe"`],
          ["postgres://app:s3cret@db:99999/test", `DATABASE_URL="postgres://app:***@db:99999/test"`],
          ["postgres://app:s3/cr@t@db/test?sslmode=maybe", `DATABASE_URL="postgres://app:***@db/test?sslmode=maybe"`],
          ["postgres://app@db/test?password=s3cret&sslmode=maybe", `DATABASE_URL="postgres://app@db/test?password=***&sslmode=maybe"`]
        ] as const
      ) {
        const error = yield* Effect.flip(check({ DATABASE_URL: url }))
        assert.include(error.message, shown)
        assert.notInclude(error.message, "s3cret")
        assert.notInclude(error.message, "cr@t")
      }
      const good = (yield* check({ DATABASE_URL: "postgres://app:s3cret@db/test" })).database!
      assert.strictEqual(good.shown, "postgres://app:***@db/test")
      assert.notInclude(String(good.url), "s3cret")
    }))

  it.effect("JOBS_TABLE and JOBS_LEASE_MS are checked with DATABASE_URL, and refused without it", () =>
    Effect.gen(function*() {
      const url = "postgres://app@db/test"
      const cases = [
        [{ DATABASE_URL: url, JOBS_TABLE: "Jobs" }, `JOBS_TABLE="Jobs": expected a lower-case SQL name`],
        [{ DATABASE_URL: url, JOBS_TABLE: "jobs; drop table x" }, `JOBS_TABLE="jobs; drop table x": expected a lower-case SQL name`],
        [{ DATABASE_URL: url, JOBS_LEASE_MS: "999" }, `JOBS_LEASE_MS="999": expected a whole number from 1000 to 3600000`],
        [{ JOBS_TABLE: "jobs" }, `JOBS_TABLE="jobs": only used with DATABASE_URL (PostgreSQL), which is not set`]
      ] as const
      for (const [env, message] of cases) {
        const error = yield* Effect.flip(check(env))
        assert.strictEqual(error.reason, "setting")
        assert.include(error.message, message)
      }
    }))

  it("a long value is cut in the line", () => {
    assert.strictEqual(show("HOST", "a".repeat(200)), `HOST="${"a".repeat(80)}..."`)
  })
})
