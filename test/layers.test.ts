// Where an app layer (a pool) is provided decides whether work still draining
// after the first signal can use it. One test per row of the README table
// "App layers: released after the work that uses them": a pool whose release
// is observable and which fails when used after it, a unit of work (a job, an
// HTTP request) in flight across the trigger that uses the pool after it.
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Fiber, Layer, Logger, Queue } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Drain, Shutdown, ShutdownReport, Worker } from "../src/index.ts"
import { NodeHttpDrain } from "../src/node/index.ts"
import { get } from "./support/http.ts"
import { section, stepNamed } from "./support/report.ts"

class Pool extends Context.Service<Pool, { readonly query: (ms: number) => Effect.Effect<string> }>()("test/Pool") {}

/** What happened, in order: "query done", "pool closed", ... */
const makeWorld = () => {
  const events: Array<string> = []
  const logs: Array<string> = []
  const PoolLive = Layer.effect(
    Pool,
    Effect.gen(function*() {
      let closed = false
      yield* Effect.addFinalizer(() => Effect.sync(() => {
        closed = true
        events.push("pool closed")
      }))
      return {
        query: (ms) =>
          Effect.sleep(ms).pipe(Effect.andThen(Effect.suspend(() => {
            if (closed) return Effect.die(new Error("Cannot use a pool after calling end"))
            events.push("query done")
            return Effect.succeed("row")
          })))
      }
    })
  )
  const logger = Logger.layer([
    Logger.make(({ message }) => void logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
  ])
  return { events, logs, PoolLive, logger }
}

/** Run `program` with `ShutdownLive` provided outermost; trigger once `inFlight` says work is running. */
const runShape = <E, R>(
  program: (inFlight: Deferred.Deferred<void>) => Effect.Effect<never, E, R>,
  provide: (self: Effect.Effect<never, E, R | Shutdown.Shutdown>) => Effect.Effect<never, unknown, never>,
  logger: Layer.Layer<never>
) =>
  Effect.gen(function*() {
    const inFlight = yield* Deferred.make<void>()
    let shutdown: Shutdown.Service | undefined
    const withHandle = Effect.flatMap(Shutdown.Shutdown, (s) => {
      shutdown = s
      return program(inFlight)
    })
    const fiber = yield* Effect.forkChild(provide(withHandle).pipe(Effect.provide(logger)))
    yield* Deferred.await(inFlight).pipe(Effect.timeout("20 seconds"))
    shutdown!.triggerUnsafe({ _tag: "signal", signal: "SIGTERM" })
    const report = yield* shutdown!.awaitReport.pipe(Effect.timeout("20 seconds"))
    yield* Fiber.await(fiber).pipe(Effect.timeout("20 seconds"))
    return report
  })

const ShutdownLive = Shutdown.layer({ timeout: "10 seconds" })

/** A job that starts now and uses the pool 300 ms later, i.e. after the trigger. */
const jobUsingPool = (inFlight: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const pool = yield* Pool
    yield* Deferred.succeed(inFlight, undefined)
    return yield* pool.query(300)
  })

/** A program that starts one such job in a Drain made at its top level, then runs until interrupted. */
const drainingJob = (inFlight: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const jobs = yield* Drain.make("jobs")
    yield* jobs.run(jobUsingPool(inFlight))
    return yield* Effect.never
  })

const assertUsable = (report: ShutdownReport.ShutdownReport, events: ReadonlyArray<string>, drainStep: string) => {
  assert.deepStrictEqual(events, ["query done", "pool closed"])
  assert.strictEqual(stepNamed(report, drainStep).outcome, "ok")
}

describe("app layers and the drain", () => {
  it.live("under the HTTP server: a request in flight across the signal uses the pool, which closes after it", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      let response: Promise<{ status?: number }> | undefined
      const report = yield* runShape(
        (inFlight) =>
          Effect.gen(function*() {
            const routes = HttpRouter.add("GET", "/q", Effect.gen(function*() {
              const pool = yield* Pool
              yield* Deferred.succeed(inFlight, undefined)
              return HttpServerResponse.text(yield* pool.query(300))
            }))
            const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }), {
              host: "127.0.0.1"
            }).pipe(Layer.provide(PoolLive))
            // Layer.launch, but reading the port first.
            const context = yield* Layer.build(HttpLive)
            response = get(Context.get(context, NodeHttpDrain.Server).port!, false, "/q")
            return yield* Effect.never
          }).pipe(Effect.scoped),
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      const answer = yield* Effect.promise(() => response!)
      assert.strictEqual(answer.status, 200)
      assertUsable(report, events, "http: drain requests")
    }))

  it.live("under a layer that makes a Worker: the job in hand finishes on the pool, which closes after", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) => {
          const JobsLive = Layer.effectDiscard(Effect.gen(function*() {
            const queue = yield* Queue.unbounded<number>()
            yield* Queue.offer(queue, 1)
            yield* Worker.make("jobs", { take: queue, process: () => jobUsingPool(inFlight) })
          })).pipe(Layer.provide(PoolLive))
          return Layer.launch(JobsLive)
        },
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      assertUsable(report, events, "jobs")
      assert.strictEqual(section(report, "worker jobs").completed, 1)
    }))

  it.live("Shutdown.releaseAs, provided inside the program: released in cleanup, after the drain", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
drainingJob(inFlight).pipe(Effect.provide(PoolLive.pipe(Shutdown.releaseAs("pool")))),
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      assertUsable(report, events, "jobs")
      assert.strictEqual(stepNamed(report, "pool").phase, "cleanup")
    }))

  it.live("Shutdown.releaseAs in Layer.provideMerge next to the Shutdown layer: released in cleanup", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
drainingJob(inFlight),
        (self) => self.pipe(Effect.provide(Layer.provideMerge(PoolLive.pipe(Shutdown.releaseAs("pool")), ShutdownLive))),
        logger
      )
      assertUsable(report, events, "jobs")
      assert.strictEqual(stepNamed(report, "pool").phase, "cleanup")
    }))

  it.live("Shutdown.releaseAs with a phase: a telemetry-like layer closes in flush", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
          Effect.gen(function*() {
            yield* Shutdown.addStep("close cache", Effect.sync(() => void events.push("cache closed")))
            const jobs = yield* Drain.make("jobs")
            yield* jobs.run(jobUsingPool(inFlight))
            return yield* Effect.never
          }).pipe(Effect.provide(PoolLive.pipe(Shutdown.releaseAs("exporter", { phase: "flush" })))),
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      assert.deepStrictEqual(events, ["query done", "cache closed", "pool closed"])
      assert.strictEqual(stepNamed(report, "exporter").phase, "flush")
    }))

  it.live("plain acquireRelease in the program: a cleanup step, after the drain", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
          Effect.gen(function*() {
            // The provided Scope is the cleanup phase: building the layer there makes it a cleanup step.
            const context = yield* Layer.build(PoolLive)
            const jobs = yield* Drain.make("jobs")
            yield* jobs.run(jobUsingPool(inFlight).pipe(Effect.provide(context)))
            return yield* Effect.never
          }),
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      assertUsable(report, events, "jobs")
    }))

  it.live("a plain layer provided inside the program is released at the signal: the failure is logged, the step failed", () =>
    Effect.gen(function*() {
      const { events, logs, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
drainingJob(inFlight).pipe(Effect.provide(PoolLive)),
        (self) => self.pipe(Effect.provide(ShutdownLive)),
        logger
      )
      assert.deepStrictEqual(events, ["pool closed"])
      const step = stepNamed(report, "jobs")
      assert.strictEqual(step.outcome, "failed")
      assert.include(step.detail, "Cannot use a pool after calling end")
      const line = logs.find((l) => l.includes(`drain "jobs": a unit failed during the shutdown`))
      assert.isDefined(line, logs.join("\n"))
      assert.include(line, "Cannot use a pool after calling end")
      assert.include(line, "Shutdown.releaseAs")
      assert.include(logs.find((l) => l.includes("shutdown complete"))!, "1 not ok")
    }))

  it.live("a plain layer in Layer.provideMerge is released at the signal too: logged, step failed", () =>
    Effect.gen(function*() {
      const { events, PoolLive, logger } = makeWorld()
      const report = yield* runShape(
        (inFlight) =>
drainingJob(inFlight),
        (self) => self.pipe(Effect.provide(Layer.provideMerge(PoolLive, ShutdownLive))),
        logger
      )
      assert.deepStrictEqual(events, ["pool closed"])
      assert.strictEqual(stepNamed(report, "jobs").outcome, "failed")
    }))
})
