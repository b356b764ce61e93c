import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Shutdown, ShutdownReport } from "../src/index.ts"

/** Build a Shutdown in its own scope; closing that scope is "the program ended". */
const build = (options: Shutdown.Options = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(Shutdown.layerTest(options), scope)
    const shutdown = Context.get(context, Shutdown.Shutdown)
    return { scope, shutdown }
  })

describe("Shutdown", () => {
  it.effect("runs steps in reverse registration order within a phase, phases in fixed order", () =>
    Effect.gen(function*() {
      const { scope, shutdown } = yield* build()
      const log: Array<string> = []
      const step = (name: string) => Effect.sync(() => log.push(name))
      yield* shutdown.addStep("db", step("db"))
      yield* shutdown.addStep("flush metrics", step("flush metrics"), { phase: "flush" })
      yield* Scope.addFinalizer(shutdown.scope("cleanup"), step("plain finalizer"))
      yield* shutdown.addStep("cache", step("cache"))
      yield* shutdown.addStep("close listener", step("close listener"), { phase: "stopAccepting" })
      yield* shutdown.addStep("deregister", step("deregister"), { phase: "readiness" })
      yield* shutdown.trigger("test")
      const fiber = yield* Effect.forkChild(shutdown.awaitReport)
      yield* TestClock.adjust("1 second")
      yield* Scope.close(scope, Exit.void)
      const report = yield* Fiber.join(fiber)
      assert.deepStrictEqual(log, ["deregister", "close listener", "cache", "plain finalizer", "db", "flush metrics"])
      assert.deepStrictEqual(report.reason, { _tag: "manual", message: "test" })
      assert.strictEqual(report.exitCode, 0)
      assert.isTrue(ShutdownReport.isClean(report))
    }))
})
