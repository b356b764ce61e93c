import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { Budget } from "../src/index.ts"

const failure = (r: Result.Result<Budget.Budget, Budget.BudgetError>) => {
  assert.isTrue(Result.isFailure(r), "expected a BudgetError")
  return (r as Result.Failure<Budget.Budget, Budget.BudgetError>).failure
}

describe("Budget", () => {
  it("defaults: 25 s, drain takes the rest", () => {
    const b = Result.getOrThrow(Budget.validate())
    assert.deepStrictEqual(b, {
      timeoutMs: 25_000,
      phasesMs: { readiness: 1000, preStop: 0, stopAccepting: 2000, drain: 15_000, cleanup: 5000, flush: 2000 }
    })
  })

  it("unset phases shrink with a short timeout so it still splits", () => {
    const b = Result.getOrThrow(Budget.validate({ timeout: "2 seconds" }))
    assert.deepStrictEqual(b.phasesMs, { readiness: 100, preStop: 0, stopAccepting: 200, drain: 1100, cleanup: 400, flush: 200 })
  })

  it("accepts the short forms used in environment variables", () => {
    const b = Result.getOrThrow(Budget.validate({ timeout: "30s", preStop: "5s", cleanup: "1500ms" }))
    assert.strictEqual(b.timeoutMs, 30_000)
    assert.strictEqual(b.phasesMs.preStop, 5000)
    assert.strictEqual(b.phasesMs.cleanup, 1500)
  })

  it("impossible splits are typed errors naming the numbers", () => {
    const over = failure(Budget.validate({ timeout: "10 seconds", drain: "8 seconds", cleanup: "3 seconds" }))
    assert.strictEqual(over.reason, "Overcommitted")
    assert.include(over.message, "drain 8 s")
    assert.include(over.message, "more than the 10 s timeout")
    const zero = failure(Budget.validate({ cleanup: 0 }))
    assert.strictEqual(zero.reason, "NotPositive")
    assert.include(zero.message, "cleanup budget must be above zero, got 0 ms")
    assert.strictEqual(failure(Budget.validate({ timeout: -5 })).reason, "NotPositive")
    assert.strictEqual(failure(Budget.validate({ flush: -1 })).reason, "NotPositive")
    const preStop = failure(Budget.validate({ timeout: "5 seconds", preStop: "5 seconds" }))
    assert.strictEqual(preStop.reason, "PreStopTooLong")
    assert.include(preStop.message, "preStop delay 5 s leaves nothing of the 5 s timeout")
    const unreadable = failure(Budget.validate({ timeout: "soon" as any }))
    assert.strictEqual(unreadable.reason, "InvalidDuration")
    assert.include(unreadable.message, `timeout: cannot read "soon"`)
    assert.strictEqual(failure(Budget.validate({ timeout: "Infinity" })).reason, "NotPositive")
  })

  it("fromKubernetes: timeout = grace - preStop hook - margin", () => {
    const b = Result.getOrThrow(Budget.validateKubernetes({ terminationGracePeriodSeconds: 35, preStopHook: "5 seconds" }))
    assert.strictEqual(b.timeoutMs, 28_000)
    const own = Result.getOrThrow(
      Budget.validateKubernetes({ terminationGracePeriodSeconds: 30, preStop: "5 seconds", safetyMargin: "3 seconds" })
    )
    assert.strictEqual(own.timeoutMs, 27_000)
    assert.strictEqual(own.phasesMs.preStop, 5000)
    const hook = failure(Budget.validateKubernetes({ terminationGracePeriodSeconds: 5, preStopHook: "5 seconds" }))
    assert.strictEqual(hook.reason, "PreStopTooLong")
    assert.include(hook.message, "preStop hook 5 s >= terminationGracePeriodSeconds 5 s")
    const tight = failure(Budget.validateKubernetes({ terminationGracePeriodSeconds: 10, cleanup: "9 seconds" }))
    assert.include(tight.message, "timeout = grace 10 s - preStop hook 0 ms - safety margin 2 s")
    assert.strictEqual(failure(Budget.validateKubernetes({ terminationGracePeriodSeconds: 0 })).reason, "NotPositive")
  })

  it.effect("make fails in the error channel", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Budget.make({ timeout: "1 second", preStop: "2 seconds" }))
      assert.strictEqual(error._tag, "BudgetError")
    }))
})
