// Pins the part of effect's Scope that the phase scopes rely on (reading the
// public `Scope.state`): if an effect upgrade changes it, this fails first.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as ScopeSteps from "../src/internal/scopeSteps.ts"

describe("scopeSteps.take", () => {
  it.effect("returns finalizers last-added first, named ones by name, and closes the scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ran: Array<string> = []
      yield* Scope.addFinalizer(scope, Effect.sync(() => ran.push("a")))
      yield* ScopeSteps.add(scope, "named", 5, () => Effect.sync(() => ran.push("b")))
      const child = yield* Scope.fork(scope)
      yield* Scope.addFinalizer(child, Effect.sync(() => ran.push("child")))
      const steps = ScopeSteps.take(scope, Exit.void)
      assert.deepStrictEqual(steps.map((s) => [s.name, s.timeoutMs]), [["scope #3", undefined], ["named", 5], ["finalizer #1", undefined]])
      assert.deepStrictEqual(ran, [])
      assert.strictEqual(scope.state._tag, "Closed")
      for (const step of steps) yield* step.run(Exit.void)
      assert.deepStrictEqual(ran, ["child", "b", "a"])
      yield* Scope.addFinalizer(scope, Effect.sync(() => ran.push("late")))
      assert.deepStrictEqual(ran, ["child", "b", "a", "late"])
    }))

  it.effect("an empty child scope is closed quietly, not made a step", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const child = yield* Scope.fork(scope)
      yield* Scope.addFinalizer(scope, Effect.void)
      const steps = ScopeSteps.take(scope, Exit.void)
      assert.deepStrictEqual(steps.map((s) => s.name), ["finalizer #2"])
      assert.strictEqual(child.state._tag, "Closed")
    }))

  it.effect("a scope with one finalizer, and an empty one", () =>
    Effect.gen(function*() {
      const one = yield* Scope.make()
      yield* Scope.addFinalizer(one, Effect.void)
      assert.strictEqual(ScopeSteps.take(one, Exit.void).length, 1)
      assert.strictEqual(ScopeSteps.take(yield* Scope.make(), Exit.void).length, 0)
    }))
})
