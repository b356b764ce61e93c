import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { ShutdownConfig } from "../src/index.ts"

const withEnv = (env: Record<string, string>) =>
  ShutdownConfig.fromEnv.pipe(Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env)))

describe("ShutdownConfig.fromEnv", () => {
  it.effect("reads every variable", () =>
    Effect.gen(function*() {
      const options = yield* withEnv({
        WINDDOWN_TIMEOUT: "25s",
        WINDDOWN_PRE_STOP: "auto",
        WINDDOWN_CLEANUP: "3 seconds",
        WINDDOWN_SIGNALS: "SIGTERM, sigint,SIGHUP",
        WINDDOWN_SIGNAL_EXIT: "conventional",
        WINDDOWN_REPORT_JSON: "true",
        WINDDOWN_HANDLE_UNCAUGHT: "0"
      })
      assert.deepStrictEqual(options, {
        timeout: "25s",
        cleanup: "3 seconds",
        preStop: "auto",
        signalExit: "conventional",
        signals: ["SIGTERM", "SIGINT", "SIGHUP"],
        reportJson: true,
        handleUncaught: false
      })
      assert.deepStrictEqual(yield* withEnv({}), {})
    }))

  it.effect("a bad value is a typed error naming the variable and the value", () =>
    Effect.gen(function*() {
      const cases: Array<[Record<string, string>, string]> = [
        [{ WINDDOWN_TIMEOUT: "25" }, `WINDDOWN_TIMEOUT="25": expected a duration with a unit`],
        [{ WINDDOWN_DRAIN: "lots" }, `WINDDOWN_DRAIN="lots"`],
        [{ WINDDOWN_SIGNALS: "SIGTERM,SIGKILL" }, `WINDDOWN_SIGNALS="SIGTERM,SIGKILL": expected a comma-separated list`],
        [{ WINDDOWN_SIGNAL_EXIT: "143" }, `WINDDOWN_SIGNAL_EXIT="143": expected success or conventional`],
        [{ WINDDOWN_REPORT_JSON: "maybe" }, `WINDDOWN_REPORT_JSON="maybe": expected true or false`],
        [{ WINDDOWN_PRE_STOP: "5" }, `WINDDOWN_PRE_STOP="5"`]
      ]
      for (const [env, message] of cases) {
        const error = yield* Effect.flip(withEnv(env))
        assert.strictEqual(error._tag, "ShutdownConfigError")
        assert.include(error.message, message)
        assert.strictEqual(error.variable, Object.keys(env)[0])
      }
    }))
})
