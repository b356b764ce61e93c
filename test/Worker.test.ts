import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Option, Queue, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import * as path from "node:path"
import { Drain, Shutdown, Worker } from "../src/index.ts"
import { ChildProcess, TestShutdown } from "../src/testing/index.ts"
import { reportFromOutput, section, stepNamed, withShutdown } from "./support/report.ts"

/** 20 s budget, 2 s to stop accepting, 10 s to drain: soft deadline at 8 s into the drain. */
const budget = { timeout: "20 seconds", stopAccepting: "2 seconds", drain: "10 seconds" } as const

/** Everything left in a queue, without waiting. */
const drainQueue = <A>(queue: Queue.Queue<A>) =>
  Effect.gen(function*() {
    const left: Array<A> = []
    while (true) {
      const next = yield* Queue.poll(queue)
      if (Option.isNone(next)) return left
      left.push(next.value)
    }
  })

describe("Worker.make", () => {
  it.effect("processes queue items with bounded concurrency", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        let running = 0
        let peak = 0
        const done: Array<number> = []
        const worker = yield* Worker.make("jobs", {
          take: queue,
          concurrency: 3,
          process: (n) =>
            Effect.gen(function*() {
              peak = Math.max(peak, ++running)
              yield* Effect.sleep("1 second")
              running--
              done.push(n)
            })
        })
        yield* Queue.offerAll(queue, [1, 2, 3, 4, 5, 6, 7])
        yield* TestClock.adjust("3 seconds")
        assert.deepStrictEqual(done.sort(), [1, 2, 3, 4, 5, 6, 7])
        assert.strictEqual(peak, 3)
        const report = yield* runToReport({ reason: "x" })
        const data = section(report, "worker jobs")
        assert.deepStrictEqual([data.taken, data.completed, data.inFlight, data.state, data.stoppedBy], [7, 7, 0, "stopped", "shutdown"])
        assert.strictEqual(stepNamed(report, "jobs: stop taking").phase, "stopAccepting")
        assert.strictEqual(stepNamed(report, "jobs").phase, "drain")
        assert.strictEqual((yield* worker.stats).taken, 7)
      })))

  it.effect("stops taking when stopAccepting starts; items in hand finish in drain, before cleanup; the rest stays queued", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string>()
        const log: Array<string> = []
        const started = yield* Deferred.make<void>()
        yield* Worker.make("jobs", {
          take: queue,
          concurrency: 2,
          process: (item) =>
            Effect.gen(function*() {
              log.push(`start ${item}`)
              if (item === "b") yield* Deferred.succeed(started, undefined)
              yield* Effect.sleep("3 seconds")
              log.push(`done ${item}`)
            })
        })
        yield* shutdown.addStep("close db", Effect.sync(() => void log.push("close db")))
        yield* Queue.offerAll(queue, ["a", "b", "c", "d"])
        yield* Deferred.await(started)
        const report = yield* runToReport({ reason: "deploy" })
        assert.deepStrictEqual(log, ["start a", "start b", "done a", "done b", "close db"])
        assert.deepStrictEqual(yield* drainQueue(queue), ["c", "d"])
        const data = section(report, "worker jobs")
        assert.deepStrictEqual([data.taken, data.completed, data.requeued], [2, 2, 0])
      })))

  it.effect("at the soft deadline an item checkpoints and is handed back with reason requested", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string>()
        const requeued: Array<string> = []
        const started = yield* Deferred.make<void>()
        yield* Worker.make("jobs", {
          take: queue,
          requeue: (item, reason) => Effect.sync(() => void requeued.push(`${item}:${reason}`)),
          process: (item) =>
            Deferred.succeed(started, undefined).pipe(
              Effect.andThen(Effect.sleep("1 minute")),
              Effect.as("done" as const),
              Drain.untilWrapUp(Effect.succeed(Worker.Requeue))
            ).pipe(Effect.tap(() => Effect.log(`item ${item} ended`)))
        })
        yield* Queue.offer(queue, "long")
        yield* Deferred.await(started)
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(requeued, ["long:requested"])
        const data = section(report, "worker jobs")
        assert.deepStrictEqual([data.requeued, data.wrappedUp, data.interrupted, data.completed], [1, 1, 0, 0])
        assert.strictEqual(stepNamed(report, "jobs").outcome, "ok")
      })))

  it.effect("at the hard deadline an item is interrupted, its checkpoint finalizer runs, then it goes back into the queue", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string>()
        const log: Array<string> = []
        const started = yield* Deferred.make<void>()
        yield* Worker.make("jobs", {
          take: queue,
          process: (item) =>
            Deferred.succeed(started, undefined).pipe(
              Effect.andThen(Effect.never),
              Effect.onInterrupt(() => Effect.sync(() => void log.push(`checkpoint ${item}`)))
            )
        })
        yield* shutdown.addStep("close db", Effect.flatMap(Queue.size(queue), (n) => Effect.sync(() => void log.push(`close db, ${n} queued`))))
        yield* Queue.offer(queue, "stuck")
        yield* Deferred.await(started)
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(log, ["checkpoint stuck", "close db, 1 queued"])
        assert.deepStrictEqual(yield* drainQueue(queue), ["stuck"])
        const data = section(report, "worker jobs")
        assert.deepStrictEqual([data.taken, data.requeued, data.interrupted, data.inFlight], [1, 1, 1, 0])
        assert.strictEqual(stepNamed(report, "jobs").outcome, "timedOut")
      })))

  it.effect("a second signal interrupts items in hand at once; they are handed back", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        const requeued: Array<string> = []
        const started = yield* Deferred.make<void>()
        let inHand = 0
        yield* Worker.make("jobs", {
          take: queue,
          concurrency: 2,
          requeue: (item, reason) => Effect.sync(() => void requeued.push(`${item}:${reason}`)),
          // both slots hold an item before the shutdown starts
          process: () =>
            Effect.andThen(
              Effect.suspend(() => ++inHand === 2 ? Deferred.succeed(started, undefined) : Effect.void),
              Effect.sleep("1 minute")
            )
        })
        yield* Queue.offerAll(queue, [1, 2, 3])
        yield* Deferred.await(started)
        yield* Effect.forkChild(Effect.gen(function*() {
          yield* shutdown.awaitStart
          yield* Effect.sleep("1 second")
          shutdown.forceUnsafe("SIGTERM")
        }))
        const report = yield* runToReport({ reason: "SIGTERM" })
        assert.deepStrictEqual(requeued.sort(), ["1:interrupted", "2:interrupted"])
        assert.deepStrictEqual(yield* drainQueue(queue), [3])
        assert.isBelow(report.durationMs, 2000)
        assert.strictEqual(report.forced?.signal, "SIGTERM")
      })))

  it.effect("a failing item is counted failed, not retried; a failing requeue is counted and logged", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string>()
        const started = yield* Deferred.make<void>()
        yield* Worker.make("jobs", {
          take: queue,
          concurrency: 2,
          requeue: () => Effect.fail("broker down"),
          process: (item) =>
            item === "bad" ? Effect.fail("boom") : Effect.andThen(Deferred.succeed(started, undefined), Effect.never)
        })
        yield* Queue.offerAll(queue, ["bad", "stuck"])
        yield* Deferred.await(started)
        const report = yield* runToReport({ reason: "x" })
        const data = section(report, "worker jobs")
        assert.deepStrictEqual([data.taken, data.failed, data.requeueFailed, data.requeued], [2, 1, 1, 0])
      })))

  it.effect("any take effect works; it ends the worker when it fails", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        let next = 0
        const done: Array<number> = []
        const worker = yield* Worker.make("poller", {
          take: Effect.suspend(() => next < 3 ? Effect.succeed(next++) : Effect.fail("no more")),
          requeue: () => Effect.void,
          process: (n) => Effect.sync(() => void done.push(n))
        })
        yield* worker.awaitStopped
        assert.deepStrictEqual(done, [0, 1, 2])
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(
          [section(report, "worker poller").stoppedBy, section(report, "worker poller").takeFailure],
          ["takeFailed", "no more"]
        )
      })))

  it.effect("an ended queue stops the worker (takeFailure: done)", () =>
    withShutdown(budget, () =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number, any>()
        const worker = yield* Worker.make("jobs", { take: queue, process: () => Effect.void })
        yield* Queue.offerAll(queue, [1, 2])
        yield* Queue.end(queue)
        yield* worker.awaitStopped
        const stats = yield* worker.stats
        assert.deepStrictEqual([stats.completed, stats.stoppedBy, stats.takeFailure], [2, "takeFailed", "done"])
      })))

  it.effect("bad options fail with one line naming the option and the value", () =>
    withShutdown(budget, () =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        const process = () => Effect.void
        const zero = yield* Effect.flip(Worker.make("a", { take: queue, process, concurrency: 0 }))
        assert.include(zero.message, "concurrency: expected a whole number from 1 to any, got 0")
        const half = yield* Effect.flip(Worker.make("b", { take: queue, process, concurrency: 1.5 }))
        assert.include(half.message, "got 1.5")
        const noRequeue = yield* Effect.flip(Worker.make("c", { take: Effect.succeed(1), process }))
        assert.include(noRequeue.message, "requeue: expected a function when take is not a Queue")
        const sliding = yield* Queue.sliding<number>(2)
        const slide = yield* Effect.flip(Worker.make("d", { take: sliding, process }))
        assert.include(slide.message, "sliding")
        const soft = yield* Effect.flip(Worker.make("e", { take: queue, process, softRatio: 2 }))
        assert.strictEqual(soft._tag, "ShutdownConfigError")
        assert.include(soft.message, "softRatio")
        assert.strictEqual(Worker.defaults.concurrency, 1)
      })))
})

describe("Worker.repeat", () => {
  it.effect("stops at the next iteration boundary: the iteration in progress finishes during drain", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const log: Array<string> = []
        let n = 0
        const inside = yield* Deferred.make<void>()
        const task = yield* Worker.repeat(
          "sync",
          Effect.gen(function*() {
            const i = ++n
            log.push(`start ${i}`)
            if (i === 3) yield* Deferred.succeed(inside, undefined)
            yield* Effect.sleep("2 seconds")
            log.push(`end ${i}`)
          }),
          { schedule: Schedule.spaced("1 second") }
        )
        yield* TestClock.adjust("6 seconds") // iterations 1 and 2 done (0-2, 3-5), 3 starts at 6 s
        yield* Deferred.await(inside)
        yield* TestClock.adjust("1 second") // mid-iteration 3
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(log, ["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"])
        assert.deepStrictEqual(section(report, "repeat sync"), {
          iterations: 3,
          state: "stopped",
          endedBy: "shutdown",
          completed: 3,
          wrappedUp: 0,
          interrupted: 0
        })
        assert.strictEqual(stepNamed(report, "sync: stop repeating").phase, "stopAccepting")
        assert.strictEqual((yield* task.stats).iterations, 3)
      })))

  it.effect("an iteration longer than the drain allowance is interrupted at the hard deadline", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const inside = yield* Deferred.make<void>()
        const log: Array<string> = []
        yield* Worker.repeat(
          "export",
          Deferred.succeed(inside, undefined).pipe(
            Effect.andThen(Effect.sleep("1 hour")),
            Effect.onInterrupt(() => Effect.sync(() => void log.push("checkpoint")))
          ),
          { schedule: Schedule.forever }
        )
        yield* Deferred.await(inside)
        const report = yield* runToReport({ reason: "x" })
        assert.deepStrictEqual(log, ["checkpoint"])
        assert.strictEqual(section(report, "repeat export").interrupted, 1)
        assert.strictEqual(stepNamed(report, "export").outcome, "timedOut")
      })))

  it.effect("a failing iteration ends the loop, as Effect.repeat does", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        let n = 0
        const task = yield* Worker.repeat(
          "flaky",
          Effect.suspend(() => ++n === 2 ? Effect.fail("bad row") : Effect.void),
          { schedule: Schedule.spaced("1 second") }
        )
        yield* TestClock.adjust("5 seconds")
        yield* task.awaitEnded
        const report = yield* runToReport({ reason: "x" })
        const data = section(report, "repeat flaky")
        assert.deepStrictEqual([data.iterations, data.endedBy, data.failure], [2, "failed", "bad row"])
      })))
})

describe("Worker: no item lost or processed twice (property)", () => {
  type Mode = "plain" | "checkpoints" | "fails"
  interface Case {
    readonly items: ReadonlyArray<{ readonly durationMs: number; readonly offerAtMs: number; readonly mode: Mode }>
    readonly concurrency: number
    readonly shutdownAtMs: number
    readonly forceAtMs: number | null
    readonly requeueIntoQueue: boolean
  }

  const arbitrary: fc.Arbitrary<Case> = fc.record({
    items: fc.array(
      fc.record({
        durationMs: fc.integer({ min: 0, max: 5000 }),
        offerAtMs: fc.integer({ min: 0, max: 4000 }),
        mode: fc.constantFrom<Mode>("plain", "plain", "checkpoints", "fails")
      }),
      { minLength: 1, maxLength: 15 }
    ),
    concurrency: fc.integer({ min: 1, max: 4 }),
    shutdownAtMs: fc.integer({ min: 0, max: 8000 }),
    forceAtMs: fc.option(fc.integer({ min: 0, max: 16_000 }), { freq: 2 }),
    requeueIntoQueue: fc.boolean()
  })

  const runCase = (c: Case) =>
    Effect.gen(function*() {
      // 10 s budget: 1 s stopAccepting, 3 s drain (soft deadline at 2.4 s).
      const t = yield* TestShutdown.make({ timeout: "10 seconds", stopAccepting: "1 second", drain: "3 seconds" })
      const queue = yield* Queue.unbounded<number>()
      const starts = new Map<number, number>()
      const completed: Array<number> = []
      const failed: Array<number> = []
      const requeued: Array<number> = []
      const worker = yield* Worker.make<number, never>("w", {
        take: queue,
        concurrency: c.concurrency,
        ...(c.requeueIntoQueue ? {} : { requeue: (i: number) => Effect.sync(() => void requeued.push(i)) }),
        process: (i) =>
          Effect.gen(function*() {
            starts.set(i, (starts.get(i) ?? 0) + 1)
            const item = c.items[i]!
            if (item.mode === "checkpoints") {
              const finished = yield* Effect.sleep(item.durationMs).pipe(
                Effect.as(true),
                Drain.untilWrapUp(Effect.succeed(false))
              )
              if (!finished) return Worker.Requeue
            } else yield* Effect.sleep(item.durationMs)
            if (item.mode === "fails") {
              failed.push(i)
              return yield* Effect.fail("boom")
            }
            completed.push(i)
          })
      }).pipe(Effect.provideService(Shutdown.Shutdown, t.shutdown))
      // Producer: offers each item at its instant, before or after the shutdown.
      yield* Effect.forkDetach(Effect.forEach(
        c.items.map((item, i) => [item.offerAtMs, i] as const).sort((a, b) => a[0] - b[0]),
        ([at, i]) => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.andThen(Effect.sleep(Math.max(0, at - now)), Queue.offer(queue, i))),
        { discard: true }
      ))
      if (c.forceAtMs !== null) {
        yield* Effect.forkDetach(Effect.andThen(Effect.sleep(c.forceAtMs), Effect.sync(() => t.shutdown.forceUnsafe("SIGTERM"))))
      }
      yield* TestClock.adjust(c.shutdownAtMs)
      const report = yield* t.runToReport({ reason: "prop" })
      // Let the producer finish: items offered after the shutdown stay queued.
      yield* TestClock.adjust("10 seconds")
      const left = yield* drainQueue(queue)
      const stats = yield* worker.stats
      const offered = c.items.map((_, i) => i)
      const outcomes = [...completed, ...failed, ...(c.requeueIntoQueue ? [] : requeued), ...left].sort((a, b) => a - b)
      const ok = JSON.stringify(outcomes) === JSON.stringify(offered) &&
        [...starts.values()].every((n) => n === 1) &&
        stats.inFlight === 0 && stats.requeueFailed === 0 &&
        stats.taken === stats.completed + stats.failed + stats.requeued &&
        stats.completed === completed.length && stats.failed === failed.length &&
        section(report, "worker w").taken === stats.taken
      if (!ok) {
        return yield* Effect.die(
          new Error(`outcomes ${JSON.stringify({ outcomes, completed, failed, requeued, left, stats, starts: [...starts] })}`)
        )
      }
    }).pipe(Effect.scoped, Effect.provide(TestClock.layer()))

  it("every item submitted ends exactly once: completed, failed, handed back, or still queued", async () => {
    await fc.assert(
      fc.asyncProperty(arbitrary, (c) => Effect.runPromise(runCase(c))),
      { numRuns: 80 }
    )
  })
})




describe("Worker under a real SIGTERM (child process)", () => {
  it("stops mid-loop: exit 0, phases in order, every taken item completed or requeued, the rest still queued", async () => {
    const child = ChildProcess.spawn(path.join(import.meta.dirname, "fixtures", "worker_sigterm.ts"))
    await child.waitFor(/^ready \d+/)
    child.signal("SIGTERM")
    const exit = await child.exited
    assert.strictEqual(exit.code, 0, exit.output)
    const lines = exit.output.split("\n")
    const at = (needle: string) => {
      const i = lines.findIndex((l) => l.includes(needle))
      assert.isAtLeast(i, 0, `no line with "${needle}" in:\n${exit.output}`)
      return i
    }
    // Order: stop taking, then the drain (checkpoint at the soft deadline,
    // interruption at the hard one), then cleanup sees the queue.
    const order = [
      "shutting down: signal SIGTERM",
      "\"jobs: stop taking\" done",
      "checkpoint slow",
      "requeued slow requested",
      "checkpoint stubborn",
      "requeued stubborn interrupted",
      "drain 2/2 \"jobs\" timed out",
      "left ",
      "shutdown complete"
    ].map(at)
    assert.deepStrictEqual(order, [...order].sort((a, b) => a - b), exit.output)
    const items = ["slow", "stubborn", ...Array.from({ length: 30 }, (_, i) => `q${i + 1}`)]
    const started = lines.filter((l) => l.startsWith("start ")).map((l) => l.slice(6))
    const done = lines.filter((l) => l.startsWith("done ")).map((l) => l.slice(5))
    const requeued = lines.filter((l) => l.startsWith("requeued ")).map((l) => l.split(" ")[1]!)
    const left = lines.find((l) => l.startsWith("left "))!.slice(5).split(",").filter((x) => x !== "")
    // Each started item ended exactly once, and started + never taken = all.
    assert.deepStrictEqual([...done, ...requeued].sort(), [...started].sort())
    assert.deepStrictEqual([...started, ...left].sort(), [...items].sort())
    assert.deepStrictEqual(requeued.sort(), ["slow", "stubborn"])
    const worker = section(reportFromOutput(exit.output), "worker jobs")
    assert.strictEqual(worker.taken, started.length)
    assert.deepStrictEqual([worker.completed, worker.requeued, worker.inFlight], [done.length, 2, 0])
  }, 30_000)
})
