import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
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

  it("a long value is cut in the line", () => {
    assert.strictEqual(show("HOST", "a".repeat(200)), `HOST="${"a".repeat(80)}..."`)
  })
})
