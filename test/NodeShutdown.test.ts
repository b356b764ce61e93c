import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Scope } from "effect"
import { NodeShutdown } from "../src/node/index.ts"

// The one process-wide 'exit' listener that carries out a decided exit code is
// installed once and stays, like the stdout/stderr error guards. 'message' is
// the IPC listener (`ipc`), added when the test runs in a forked worker.
const signals = ["SIGTERM", "SIGINT", "SIGHUP", "uncaughtException", "unhandledRejection", "message"] as const
const counts = () => Object.fromEntries(signals.map((s) => [s, process.listenerCount(s)]))

describe("NodeShutdown.layer", () => {
  it.effect("adds its listeners when built and removes them when released: 1,000 cycles leave no trace", () =>
    Effect.gen(function*() {
      const before = counts()
      // watchdog off: each release runs a shutdown, and with the watchdog on the
      // layer would end this (test) process once that shutdown is over.
      const layer = NodeShutdown.layer({ signals: ["SIGTERM", "SIGINT", "SIGHUP"], handleUncaught: true, watchdog: false })
      for (let i = 0; i < 1000; i++) {
        const scope = yield* Scope.make()
        yield* Layer.buildWithScope(layer, scope)
        if (i === 0) {
          assert.strictEqual(process.listenerCount("SIGHUP"), before.SIGHUP! + 1)
          if (typeof process.send === "function") assert.strictEqual(process.listenerCount("message"), before.message! + 1)
          assert.strictEqual(process.listenerCount("uncaughtException"), before.uncaughtException! + 1)
        }
        yield* Scope.close(scope, Exit.void)
      }
      assert.deepStrictEqual(counts(), before)
    }))

  it.effect("bad options are a typed error at build, naming the value", () =>
    Effect.gen(function*() {
      const build = (options: NodeShutdown.Options) =>
        Effect.flip(Effect.scoped(Layer.build(NodeShutdown.layer(options))))
      assert.include((yield* build({ signals: ["SIGKILL" as any] })).message, `signals: expected one of SIGTERM, SIGINT`)
      assert.include((yield* build({ signals: [] })).message, "signals: expected at least one signal")
      assert.include((yield* build({ forceOnSignal: 1 })).message, "forceOnSignal: expected a whole number from 2 to any, got 1")
      assert.include((yield* build({ exitOnSignal: 2 })).message, "exitOnSignal: expected a whole number from 3 to any, got 2")
      assert.include((yield* build({ forcedExitCode: 300 })).message, "forcedExitCode: expected a whole number from 0 to 255, got 300")
      assert.include((yield* build({ exitGrace: "soon" as any })).message, `exitGrace: expected a duration of zero or more`)
      assert.include((yield* build({ timeout: "1 second", preStop: "3 seconds" })).message, "preStop delay 3 s")
      assert.deepStrictEqual(counts().SIGTERM, process.listenerCount("SIGTERM"))
    }))

  it("pre-stop 'auto' is 5 s under Kubernetes, 0 elsewhere", () => {
    assert.strictEqual(NodeShutdown.resolvePreStop("auto", { KUBERNETES_SERVICE_HOST: "10.0.0.1" }), "5 seconds")
    assert.strictEqual(NodeShutdown.resolvePreStop(undefined, {}), "0 seconds")
    assert.strictEqual(NodeShutdown.resolvePreStop("2 seconds", { KUBERNETES_SERVICE_HOST: "10.0.0.1" }), "2 seconds")
  })
})
