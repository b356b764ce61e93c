// A generated list of bad values for every WINDDOWN_* variable and for the
// options of every module: each is refused before anything starts, with one
// line naming the variable (or option) and the value, and no stack frames.
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Queue, Scope } from "effect"
import { Drain, Health, Shutdown, ShutdownConfig, Worker } from "../../src/index.ts"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "../../src/node/index.ts"
import { withShutdown } from "../support/report.ts"

type Kind = "duration" | "boolean" | "signals" | "signalExit" | "preStop" | "reportTo"

const kinds: Record<keyof typeof ShutdownConfig.variables, Kind> = {
  timeout: "duration",
  readiness: "duration",
  preStop: "preStop",
  stopAccepting: "duration",
  drain: "duration",
  cleanup: "duration",
  flush: "duration",
  stepTimeout: "duration",
  forcedStepTimeout: "duration",
  progressInterval: "duration",
  exitGrace: "duration",
  signalExit: "signalExit",
  signals: "signals",
  reportJson: "boolean",
  reportSummary: "boolean",
  reportTo: "reportTo",
  handleUncaught: "boolean"
}

const badValues: Record<Kind, ReadonlyArray<string>> = {
  duration: ["soon", "25", "-1s", "1.2.3s", "10 lightyears", "s", "0x10s", "Infinity", "NaN ms", "25 s s"],
  preStop: ["sometimes", "5", "-2s", "autos"],
  boolean: ["maybe", "2", "ye", "truee", "on off"],
  signals: ["SIGKILL", "SIGTERM,SIGSTOP", ",", "TERM;INT", "SIGTERM, 15"],
  signalExit: ["143", "fail", "Success "],
  reportTo: ["file", "stdout,stderr", "/tmp/report"]
}

/** The whole layer, built with `env` as its environment: what a process start does. */
const buildWithEnv = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exit = yield* Effect.exit(
      Layer.buildWithScope(NodeShutdown.layerConfig({ watchdog: false }), scope).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env))
      )
    )
    yield* Scope.close(scope, Exit.void)
    return exit
  })

const assertOneLine = (error: { readonly message: string; readonly stack?: string | undefined }, names: string) => {
  assert.include(error.message, names)
  assert.notInclude(error.message, "\n")
  assert.notMatch(error.stack ?? "", /\n\s+at /, "no stack frames")
}

describe("every WINDDOWN_* variable refuses bad values in one line naming it", () => {
  for (const [option, variable] of Object.entries(ShutdownConfig.variables)) {
    const kind = kinds[option as keyof typeof kinds]
    it.effect(`${variable} (${kind})`, () =>
      Effect.gen(function*() {
        for (const value of badValues[kind]) {
          const exit = yield* buildWithEnv({ [variable]: value })
          assert.isTrue(Exit.isFailure(exit), `${variable}=${value} was accepted`)
          const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
          assert.include(["ShutdownConfigError", "BudgetError"], error?._tag, `${variable}=${value}: ${String(error)}`)
          assertOneLine(error, variable)
        }
      }))
  }

  it("a variable set but empty is refused, naming it", () => {
    const error = ShutdownConfig.checkEmpty({ WINDDOWN_DRAIN: "" })!
    assert.strictEqual(error.variable, "WINDDOWN_DRAIN")
    assertOneLine(error, "WINDDOWN_DRAIN is set but empty")
    assert.isUndefined(ShutdownConfig.checkEmpty({ WINDDOWN_DRAIN: "5s", OTHER: "" }))
  })

  it.effect("a budget that cannot work names the variables that set it", () =>
    Effect.gen(function*() {
      const exit = yield* buildWithEnv({ WINDDOWN_TIMEOUT: "3s", WINDDOWN_CLEANUP: "5s" })
      const error = Exit.isFailure(exit) ? (exit.cause.reasons[0] as any).error : undefined
      assert.strictEqual(error?._tag, "BudgetError")
      assertOneLine(error, "(set by WINDDOWN_TIMEOUT=3s, WINDDOWN_CLEANUP=5s)")
    }))

  it.effect("durations at and beyond Node's timer limit are accepted", () =>
    Effect.gen(function*() {
      for (const value of ["596h", "600h", "10000h"]) {
        const exit = yield* buildWithEnv({ WINDDOWN_TIMEOUT: value })
        assert.isTrue(Exit.isSuccess(exit), `${value}: ${String(exit)}`)
      }
    }))
})

describe("every module refuses bad options in one line naming the option", () => {
  const bad = <A>(what: string, attempt: Effect.Effect<A, any, any>, name: string) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(attempt)
      assert.strictEqual(error._tag, "ShutdownConfigError", `${what}: ${String(error)}`)
      assertOneLine(error, name)
    })

  it.effect("Shutdown, NodeShutdown", () =>
    Effect.gen(function*() {
      const cases: Array<[Shutdown.Options, string]> = [
        [{ stepTimeout: "0s" }, "stepTimeout"],
        [{ forcedStepTimeout: "later" as never }, "forcedStepTimeout"],
        [{ progressInterval: -5 }, "progressInterval"],
        [{ signalExit: "loud" as never }, "signalExit"],
        [{ forcedExitCode: 256 }, "forcedExitCode"],
        [{ deadlineExitCode: 1.5 }, "deadlineExitCode"],
        [{ interruptProgram: "yes" as never }, "interruptProgram"]
      ]
      for (const [options, name] of cases) {
        yield* bad(name, Effect.scoped(Layer.build(Shutdown.layer(options))), name)
      }
      const node: Array<[NodeShutdown.Options, string]> = [
        [{ repeatWindow: "often" as never }, "repeatWindow"],
        [{ exitGrace: Infinity }, "exitGrace"],
        [{ reportTo: "file" as never }, "reportTo"],
        [{ watchdog: 1 as never }, "watchdog"],
        [{ handleUncaught: "true" as never }, "handleUncaught"]
      ]
      for (const [options, name] of node) {
        yield* bad(name, Effect.scoped(Layer.build(NodeShutdown.layer({ ...options, watchdog: options.watchdog ?? false }))), name)
      }
    }))

  it.effect("Drain, Worker, Health, NodeHealth, NodeHttpDrain", () =>
    withShutdown({ timeout: "10 seconds" }, () =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        yield* bad("drain timeout", Drain.make("a", { timeout: "0 seconds" }), "timeout")
        yield* bad("drain softRatio", Drain.make("b", { softRatio: 7 }), "softRatio")
        yield* bad("drain name", Drain.make("c/d"), "name")
        yield* bad("waitFor poll", Drain.waitFor("w", () => true, { pollInterval: 0 }), "pollInterval")
        yield* bad("worker concurrency", Worker.make("e", { take: queue, process: () => Effect.void, concurrency: -1 }), "concurrency")
        yield* bad("worker stopPhase", Worker.repeat("f", Effect.void, { schedule: undefined as never, stopPhase: "drain" as never }), "stopPhase")
        yield* bad("health detail", Health.make({ detail: "all" as never }), "detail")
        yield* bad("health checkTimeout", Health.make({ checkTimeout: "never" as never }), "checkTimeout")
        yield* bad("http idleGrace", NodeHttpDrain.adopt(undefined as never, { idleGrace: "-1 seconds" as never }), "idleGrace")
        yield* bad("http drainTimeout", NodeHttpDrain.adopt(undefined as never, { drainTimeout: 0 }), "drainTimeout")
        yield* bad(
          "probe port",
          Effect.scoped(Layer.build(NodeHealth.layerServer({ port: 70000 }).pipe(Layer.provide(Health.layer())))),
          "port"
        )
      })))
})
