/**
 * Drain overhead: what tracking a unit costs next to a plain `forkChild` (and
 * effect's own FiberSet), and how long closing a drain takes with 10,000
 * fibers in flight, either finishing (a latch opens) or interrupted (the hard
 * deadline). Medians of several runs, measured with `process.hrtime`.
 *
 *   node --import tsx bench/drain.ts
 */
import { Effect, Fiber, FiberSet, Latch, References, Scope } from "effect"
import { Drain, Shutdown } from "winddown"

const RUNS = 7
const UNITS = 100_000
const IN_FLIGHT = 10_000

const quiet = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provideService(References.MinimumLogLevel, "None")))

const nowMs = () => Number(process.hrtime.bigint()) / 1e6

/** A fresh Shutdown and a drain in it; the bench measures only between `start` and `stop`. */
let n = 0
const withDrain = <A>(f: (drain: Drain.Drain) => Effect.Effect<A, never, Scope.Scope>) =>
  Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "60 seconds" })
    const drain = yield* Drain.make(`bench ${n++}`).pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    return yield* f(drain)
  })

/** Time an effect that returns its own measured span in ms. */
const measure = async (name: string, run: () => Promise<number>) => {
  await run() // warm-up
  const samples: Array<number> = []
  for (let i = 0; i < RUNS; i++) samples.push(await run())
  samples.sort((a, b) => a - b)
  return { name, medianMs: samples[Math.floor(samples.length / 2)]!, minMs: samples[0]!, maxMs: samples[samples.length - 1]! }
}

const span = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = nowMs()
    yield* effect
    return nowMs() - start
  })

// 1. Running 100,000 tiny units and waiting for all of them.
const forkChild = () =>
  quiet(span(Effect.gen(function*() {
    const fibers: Array<Fiber.Fiber<void>> = []
    for (let i = 0; i < UNITS; i++) fibers.push(yield* Effect.forkChild(Effect.void))
    yield* Fiber.awaitAll(fibers)
  })))

const fiberSet = () =>
  quiet(Effect.gen(function*() {
    const set = yield* FiberSet.make()
    return yield* span(Effect.gen(function*() {
      for (let i = 0; i < UNITS; i++) yield* FiberSet.run(set, Effect.void)
      yield* FiberSet.awaitEmpty(set)
    }))
  }))

const drainRun = () =>
  quiet(withDrain((drain) =>
    span(Effect.gen(function*() {
      const fibers: Array<Fiber.Fiber<void>> = []
      for (let i = 0; i < UNITS; i++) fibers.push(yield* Effect.orDie(drain.run(Effect.void)))
      yield* Fiber.awaitAll(fibers)
    }))
  ))

// 2. Closing with 10,000 units in flight.
const drainFinishing = () =>
  quiet(withDrain((drain) =>
    Effect.gen(function*() {
      const latch = yield* Latch.make(false)
      for (let i = 0; i < IN_FLIGHT; i++) yield* Effect.orDie(drain.run(latch.await))
      yield* Effect.yieldNow
      return yield* span(Effect.gen(function*() {
        const closing = yield* Effect.forkChild(drain.close("30 seconds"))
        yield* latch.open
        const stats = yield* Fiber.join(closing)
        if (stats.completed !== IN_FLIGHT) throw new Error(`completed ${stats.completed}`)
      }))
    })
  ))

const drainInterrupting = () =>
  quiet(withDrain((drain) =>
    Effect.gen(function*() {
      for (let i = 0; i < IN_FLIGHT; i++) yield* Effect.orDie(drain.run(Effect.never))
      yield* Effect.yieldNow
      return yield* span(Effect.gen(function*() {
        const stats = yield* drain.close(0)
        if (stats.interrupted !== IN_FLIGHT) throw new Error(`interrupted ${stats.interrupted}`)
      }))
    })
  ))

const plainAwaiting = () =>
  quiet(Effect.gen(function*() {
    const latch = yield* Latch.make(false)
    const fibers: Array<Fiber.Fiber<void>> = []
    for (let i = 0; i < IN_FLIGHT; i++) fibers.push(yield* Effect.forkChild(latch.await))
    yield* Effect.yieldNow
    return yield* span(Effect.andThen(latch.open, Fiber.awaitAll(fibers)))
  }))

const plainInterrupting = () =>
  quiet(Effect.gen(function*() {
    const fibers: Array<Fiber.Fiber<never>> = []
    for (let i = 0; i < IN_FLIGHT; i++) fibers.push(yield* Effect.forkChild(Effect.never))
    yield* Effect.yieldNow
    return yield* span(Fiber.interruptAll(fibers))
  }))




const results = [
  await measure(`${UNITS.toLocaleString("en")} units: Effect.forkChild + awaitAll (baseline)`, forkChild),
  await measure(`${UNITS.toLocaleString("en")} units: FiberSet.run + awaitEmpty`, fiberSet),
  await measure(`${UNITS.toLocaleString("en")} units: drain.run + awaitAll`, drainRun),
  await measure(`${IN_FLIGHT.toLocaleString("en")} in flight, finishing: plain awaitAll (baseline)`, plainAwaiting),
  await measure(`${IN_FLIGHT.toLocaleString("en")} in flight, finishing: drain.close`, drainFinishing),
  await measure(`${IN_FLIGHT.toLocaleString("en")} in flight, interrupted: plain interruptAll (baseline)`, plainInterrupting),
  await measure(`${IN_FLIGHT.toLocaleString("en")} in flight, interrupted: drain.close(0)`, drainInterrupting)
]

const baselines: Record<number, number> = { 0: 0, 1: 0, 2: 0, 3: 3, 4: 3, 5: 5, 6: 5 }
const fmt = (ms: number) => `${ms.toFixed(2)} ms`
console.log(`node ${process.version}, medians of ${RUNS} runs (after one warm-up)\n`)
console.table(results.map((r, i) => ({
  operation: r.name,
  median: fmt(r.medianMs),
  "min–max": `${r.minMs.toFixed(1)}–${r.maxMs.toFixed(1)} ms`,
  "per unit": `${((r.medianMs * 1e6) / (i < 3 ? UNITS : IN_FLIGHT)).toFixed(0)} ns`,
  "× baseline": (r.medianMs / results[baselines[i]!]!.medianMs).toFixed(2)
})))
