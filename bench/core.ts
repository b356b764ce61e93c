/**
 * Core overhead: the cost of what a service pays while running (the flag
 * read, registering a step) and of the shutdown itself (trigger, running
 * 1,000 / 10,000 no-op steps), next to effect's plain Scope as the baseline.
 *
 *   node --import tsx bench/core.ts
 */
import { Effect, Exit, References, Scope } from "effect"
import { Bench } from "tinybench"
import { Shutdown } from "winddown"

// Step log lines would dominate the measurement; the bench runs with logging off.
const quiet = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(effect.pipe(Effect.provideService(References.MinimumLogLevel, "None")))

const makeShutdown = () =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const shutdown = yield* Shutdown.make({ timeout: "60 seconds" }).pipe(Scope.provide(scope))
    return { scope, shutdown }
  })

const { shutdown: idle } = await quiet(makeShutdown())
const registerScope = await quiet(makeShutdown())

const runSteps = (n: number) =>
  quiet(Effect.gen(function*() {
    const { scope, shutdown } = yield* makeShutdown()
    for (let i = 0; i < n; i++) yield* shutdown.addStep(`step ${i}`, Effect.void)
    yield* Scope.close(scope, Exit.void)
  }))

const plainScope = (n: number) =>
  Effect.runPromise(Effect.gen(function*() {
    const scope = yield* Scope.make()
    for (let i = 0; i < n; i++) yield* Scope.addFinalizer(scope, Effect.void)
    yield* Scope.close(scope, Exit.void)
  }))

const fast = new Bench({ time: 300 })
fast
  .add("isShuttingDownUnsafe()", () => {
    idle.isShuttingDownUnsafe()
  })
  .add("addStep (register, runSync)", () => {
    Effect.runSync(registerScope.shutdown.addStep("noop", Effect.void))
  })
  .add("plain Scope.addFinalizer (runSync)", () => {
    Effect.runSync(Scope.addFinalizer(registerScope.scope, Effect.void))
  })
  .add("a whole shutdown with no steps (make, trigger, end)", () =>
    quiet(Effect.gen(function*() {
      const { scope, shutdown } = yield* makeShutdown()
      shutdown.triggerUnsafe({ _tag: "manual", message: "bench" })
      yield* Scope.close(scope, Exit.void)
    })))
await fast.run()

// trigger alone: time it across many ready-made instances, then let them finish.
const instances = await quiet(Effect.all(Array.from({ length: 10_000 }, makeShutdown)))
const t0 = performance.now()
for (const { shutdown } of instances) shutdown.triggerUnsafe({ _tag: "manual", message: "bench" })
const triggerMs = (performance.now() - t0) / instances.length
await quiet(Effect.forEach(instances, ({ scope }) => Scope.close(scope, Exit.void), { discard: true }))

const slow = new Bench({ time: 1000, iterations: 5 })
for (const n of [1000, 10_000]) {
  slow.add(`shutdown with ${n} no-op steps`, () => runSteps(n))
  slow.add(`plain Scope close with ${n} finalizers`, () => plainScope(n))
}
await slow.run()

const rows = [...fast.tasks, ...slow.tasks].map((task) => {
  const r = task.result as any
  const medianMs: number = r?.latency?.p50 ?? r?.median ?? NaN
  return {
    operation: task.name,
    "median": medianMs < 0.001 ? `${(medianMs * 1e6).toFixed(0)} ns` : medianMs < 1 ? `${(medianMs * 1000).toFixed(2)} µs` : `${medianMs.toFixed(2)} ms`,
    samples: r?.latency?.samples?.length ?? r?.samples?.length ?? ""
  }
})
rows.splice(fast.tasks.length, 0, { operation: "triggerUnsafe (10,000 instances)", median: `${(triggerMs * 1000).toFixed(2)} µs (mean)`, samples: 10_000 })
console.table(rows)
const median = (name: string) => {
  const r = [...fast.tasks, ...slow.tasks].find((t) => t.name === name)!.result as any
  return (r?.latency?.p50 ?? r?.median) as number
}
for (const n of [1000, 10_000]) {
  console.log(
    `${n} steps: winddown / plain Scope = ${(median(`shutdown with ${n} no-op steps`) / median(`plain Scope close with ${n} finalizers`)).toFixed(1)}x (each winddown step is timed, bounded and logged in its own fiber)`
  )
}
