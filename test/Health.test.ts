/**
 * Health under TestClock: probe states across startup and every phase of the
 * shutdown, checks with timeouts, what the answers reveal, option validation.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Data, Effect, Exit, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { Health, Shutdown } from "../src/index.ts"
import { TestShutdown } from "../src/testing/index.ts"

class DbDown extends Data.TaggedError("DbDown")<{ readonly message: string }> {}

const setup = (options: Health.Options = {}, shutdownOptions: Shutdown.Options = { timeout: "20 seconds" }) =>
  Effect.gen(function*() {
    const test = yield* TestShutdown.make(shutdownOptions)
    const health = yield* Health.make(options).pipe(Effect.provideService(Shutdown.Shutdown, test.shutdown))
    return { ...test, health }
  })

const statuses = (health: Health.Service) =>
  Effect.all({
    readiness: Effect.map(health.readiness, (r) => r.status),
    liveness: Effect.map(health.liveness, (r) => r.status),
    startup: Effect.map(health.startup, (r) => r.status)
  })

describe("probe states", () => {
  it.effect("readiness and startup are starting until markStarted; liveness is ok from the start", () =>
    Effect.gen(function*() {
      const { health } = yield* setup()
      assert.deepStrictEqual(yield* health.readiness, { status: "starting", httpStatus: 503 })
      assert.deepStrictEqual(yield* statuses(health), { readiness: "starting", liveness: "ok", startup: "starting" })
      yield* health.markStarted
      assert.isTrue(health.isStartedUnsafe())
      assert.deepStrictEqual(yield* health.readiness, { status: "ok", httpStatus: 200, checks: {} })
      assert.deepStrictEqual(yield* statuses(health), { readiness: "ok", liveness: "ok", startup: "ok" })
    }))

  it.effect("startedImmediately needs no markStarted", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true })
      assert.deepStrictEqual(yield* statuses(health), { readiness: "ok", liveness: "ok", startup: "ok" })
    }))

  it.effect("readiness answers shuttingDown at the trigger itself, without running its checks", () =>
    Effect.gen(function*() {
      const { health, shutdown, endProgram } = yield* setup()
      let runs = 0
      yield* health.addCheck("db", Effect.sync(() => void runs++))
      yield* health.markStarted
      assert.strictEqual((yield* health.readiness).status, "ok")
      assert.strictEqual(runs, 1)
      shutdown.triggerUnsafe({ _tag: "manual", message: "test" })
      // no yield, no clock move: the flag is read as it is
      assert.deepStrictEqual(yield* health.readiness, { status: "shuttingDown", httpStatus: 503 })
      assert.strictEqual(runs, 1)
      assert.strictEqual((yield* health.liveness).status, "ok")
      yield* endProgram()
    }))

  it.effect("shuttingDown wins over starting when the shutdown begins before startup completes", () =>
    Effect.gen(function*() {
      const { health, shutdown, endProgram } = yield* setup()
      yield* shutdown.trigger("early")
      assert.strictEqual((yield* health.readiness).status, "shuttingDown")
      assert.strictEqual((yield* health.liveness).status, "ok")
      yield* endProgram()
    }))

  it.effect("liveness stays ok in every phase of the shutdown, readiness stays shuttingDown", () =>
    Effect.gen(function*() {
      const { health, shutdown, runToReport } = yield* setup({}, { timeout: "20 seconds", preStop: "2 seconds" })
      yield* health.markStarted
      yield* health.addCheck("heartbeat", Effect.succeed(true), { probe: "liveness" })
      const seen: Array<readonly [string, string, string]> = []
      const record = Effect.gen(function*() {
        const phase = yield* shutdown.status
        const { readiness, liveness } = yield* statuses(health)
        seen.push([phase, readiness, liveness])
      })
      for (const phase of ["readiness", "stopAccepting", "cleanup", "flush"] as const) {
        yield* shutdown.addStep(`probe in ${phase}`, record, { phase })
      }
      // during a drain step, before and after it waited
      yield* shutdown.addStep("requests", Effect.andThen(record, Effect.andThen(Effect.sleep("3 seconds"), record)), {
        phase: "drain"
      })
      const preStop = yield* Effect.forkChild(
        Effect.andThen(Effect.repeat(shutdown.status, { until: (s) => s === "preStop" }), record)
      )
      const report = yield* runToReport({ reason: "deploy" })
      yield* Fiber.join(preStop)
      assert.deepStrictEqual(seen.map(([phase]) => phase).sort(), [
        "cleanup", "drain", "drain", "flush", "preStop", "readiness", "stopAccepting"
      ])
      for (const [, readiness, liveness] of seen) {
        assert.strictEqual(readiness, "shuttingDown")
        assert.strictEqual(liveness, "ok")
      }
      assert.strictEqual(report.exitCode, 0)
    }))

  it.effect("a signal arriving while readiness checks run turns the answer into shuttingDown", () =>
    Effect.gen(function*() {
      const { health, shutdown, endProgram } = yield* setup()
      yield* health.markStarted
      yield* health.addCheck("db", Effect.sleep("500 millis"))
      const probe = yield* Effect.forkChild(health.readiness)
      yield* TestClock.adjust("100 millis")
      yield* shutdown.trigger("deploy")
      yield* TestClock.adjust("400 millis")
      assert.deepStrictEqual(yield* Fiber.join(probe), { status: "shuttingDown", httpStatus: 503 })
      yield* endProgram()
    }))
})

describe("checks", () => {
  it.effect("a check sleeping past its timeout is timedOut, the probe 503; checks run concurrently", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true })
      yield* health.addCheck("cache", Effect.sleep("200 millis"))
      yield* health.addCheck("db", Effect.sleep("5 seconds"), { timeout: "1 second" })
      const probe = yield* Effect.forkChild(health.readiness)
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(probe)
      assert.deepStrictEqual(result, {
        status: "failing",
        httpStatus: 503,
        checks: { cache: { status: "ok", durationMs: 200 }, db: { status: "timedOut", durationMs: 1000 } }
      })
    }))

  it.effect("the default check timeout is 1 second, and a check stuck uninterruptibly cannot hold the probe", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true })
      yield* health.addCheck("stuck", Effect.uninterruptible(Effect.never))
      const probe = yield* Effect.forkChild(health.readiness)
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(probe)
      assert.deepStrictEqual(result.checks, { stuck: { status: "timedOut", durationMs: 1000 } })
    }))

  it.effect("checkTimeout sets the default of checks registered without one", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true, checkTimeout: "300 millis" })
      yield* health.addCheck("slow", Effect.sleep("1 second"))
      const probe = yield* Effect.forkChild(health.readiness)
      yield* TestClock.adjust("300 millis")
      assert.deepStrictEqual((yield* Fiber.join(probe)).checks, { slow: { status: "timedOut", durationMs: 300 } })
    }))

  it.effect("failures, defects and false are failing with their message; true and any value pass", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true })
      yield* health.addCheck("fails", Effect.fail(new DbDown({ message: "connection refused" })))
      yield* health.addCheck("dies", Effect.die(new Error("kaput\n    at somewhere (file.ts:1:1)")))
      yield* health.addCheck("false", Effect.succeed(false))
      yield* health.addCheck("true", Effect.succeed(true))
      yield* health.addCheck("value", Effect.succeed({ rows: 1 }))
      const result = yield* health.readiness
      assert.strictEqual(result.status, "failing")
      assert.deepStrictEqual(result.checks, {
        fails: { status: "failing", durationMs: 0, error: "connection refused" },
        dies: { status: "failing", durationMs: 0, error: "kaput" },
        false: { status: "failing", durationMs: 0, error: "check returned false" },
        true: { status: "ok", durationMs: 0 },
        value: { status: "ok", durationMs: 0 }
      })
    }))

  it.effect("each probe runs only its own checks; a failing liveness check fails liveness only", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ startedImmediately: true })
      yield* health.addCheck("event loop", Effect.succeed(false), { probe: "liveness" })
      yield* health.addCheck("migrations", Effect.void, { probe: "startup" })
      yield* health.addCheck("db", Effect.void)
      const liveness = yield* health.liveness
      assert.deepStrictEqual([liveness.status, liveness.httpStatus, Object.keys(liveness.checks!)], [
        "failing", 503, ["event loop"]
      ])
      assert.deepStrictEqual(Object.keys((yield* health.startup).checks!), ["migrations"])
      assert.deepStrictEqual(Object.keys((yield* health.readiness).checks!), ["db"])
    }))

  it.effect("a check runs with the context of the caller of addCheck", () =>
    Effect.gen(function*() {
      class Db extends Context.Service<Db, { readonly up: boolean }>()("test/Db") {}
      const { health } = yield* setup({ startedImmediately: true })
      yield* health.addCheck("db", Effect.map(Db, (db) => db.up)).pipe(Effect.provideService(Db, { up: false }))
      assert.deepStrictEqual((yield* health.readiness).checks, {
        db: { status: "failing", durationMs: 0, error: "check returned false" }
      })
    }))

  it.effect("a duplicate name on one probe is a HealthError; bad check options are one-line option errors", () =>
    Effect.gen(function*() {
      const { health } = yield* setup()
      yield* health.addCheck("db", Effect.void)
      yield* health.addCheck("db", Effect.void, { probe: "startup" })
      const duplicate = yield* Effect.flip(health.addCheck("db", Effect.void))
      assert.strictEqual(duplicate._tag === "HealthError" && duplicate.reason, "DuplicateCheck")
      const badTimeout = yield* Effect.flip(health.addCheck("x", Effect.void, { timeout: "soon" as never }))
      assert.strictEqual(badTimeout._tag, "ShutdownConfigError")
      assert.include(badTimeout.message, `timeout of check "x": expected a duration above zero`)
      assert.include(badTimeout.message, `"soon"`)
      const badProbe = yield* Effect.flip(health.addCheck("x", Effect.void, { probe: "ready" as never }))
      assert.include(badProbe.message, `"ready"`)
      const noName = yield* Effect.flip(health.addCheck("", Effect.void))
      assert.strictEqual(noName._tag, "ShutdownConfigError")
    }))
})

describe("answers", () => {
  it.effect("detail none: only the status; unknown paths are none; the query string is ignored", () =>
    Effect.gen(function*() {
      const { health } = yield* setup()
      yield* health.addCheck("db", Effect.fail(new DbDown({ message: "secret host db-7:5432 down" })))
      const starting = yield* health.respond("/readyz")
      assert.deepStrictEqual(starting, Option.some({
        status: 503,
        headers: { "content-type": "application/json", "cache-control": "no-store" },
        body: `{"status":"starting"}`
      }))
      yield* health.markStarted
      const failing = yield* health.respond("/readyz?verbose=1")
      assert.strictEqual(Option.getOrThrow(failing).body, `{"status":"failing"}`)
      assert.strictEqual(Option.getOrThrow(yield* health.respond("/livez")).body, `{"status":"ok"}`)
      assert.strictEqual(Option.getOrThrow(yield* health.respond("/startupz")).status, 200)
      assert.isTrue(Option.isNone(yield* health.respond("/metrics")))
      assert.isTrue(Option.isNone(yield* health.respond("/readyz/extra")))
    }))

  it.effect("detail checks: per-check status and duration, the error only for failing checks, no stack", () =>
    Effect.gen(function*() {
      const { health } = yield* setup({ detail: "checks", startedImmediately: true })
      yield* health.addCheck("db", Effect.die(new Error("connection refused")))
      yield* health.addCheck("cache", Effect.void)
      yield* health.addCheck("queue", Effect.never, { timeout: "100 millis" })
      const probe = yield* Effect.forkChild(health.respond("/readyz"))
      yield* TestClock.adjust("100 millis")
      const response = Option.getOrThrow(yield* Fiber.join(probe))
      assert.strictEqual(response.status, 503)
      assert.deepStrictEqual(JSON.parse(response.body), {
        status: "failing",
        checks: {
          db: { status: "failing", durationMs: 0, error: "connection refused" },
          cache: { status: "ok", durationMs: 0 },
          queue: { status: "timedOut", durationMs: 100 }
        }
      })
      assert.notInclude(response.body, "    at ")
      // per call override, and custom paths
      const quiet = yield* health.respond("/health/live", { detail: "none", paths: { liveness: "/health/live" } })
      assert.strictEqual(Option.getOrThrow(quiet).body, `{"status":"ok"}`)
    }))

  it.effect("during the shutdown, detail checks still shows no checks for readiness (none ran)", () =>
    Effect.gen(function*() {
      const { health, shutdown, endProgram } = yield* setup({ detail: "checks", startedImmediately: true })
      yield* health.addCheck("db", Effect.void)
      yield* shutdown.trigger("x")
      assert.strictEqual(Option.getOrThrow(yield* health.respond("/readyz")).body, `{"status":"shuttingDown"}`)
      assert.strictEqual(Option.getOrThrow(yield* health.respond("/livez")).body, `{"status":"ok","checks":{}}`)
      yield* endProgram()
    }))
})

describe("options", () => {
  it.effect("bad layer options fail with one line naming the option and the value", () =>
    Effect.gen(function*() {
      const detail = yield* Effect.flip(setup({ detail: "verbose" as never }))
      assert.strictEqual(detail._tag, "ShutdownConfigError")
      assert.include(detail.message, `detail: expected one of none, checks, got "verbose"`)
      const timeout = yield* Effect.flip(setup({ checkTimeout: "0 seconds" }))
      assert.include(timeout.message, `checkTimeout`)
      assert.include(timeout.message, `"0 seconds"`)
      const started = yield* Effect.flip(setup({ startedImmediately: "yes" as never }))
      assert.include(started.message, `"yes"`)
    }))

  it.effect("bad paths fail with one line naming the path; defaults live in one object", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* Health.resolvePaths(), Health.defaults.paths)
      const noSlash = yield* Effect.flip(Health.resolvePaths({ readiness: "readyz" as never }))
      assert.include(noSlash.message, `paths.readiness`)
      const same = yield* Effect.flip(Health.resolvePaths({ readiness: "/livez" }))
      assert.include(same.message, "three different paths")
      assert.deepStrictEqual(Health.defaults, {
        detail: "none",
        checkTimeout: "1 second",
        startedImmediately: false,
        probe: "readiness",
        paths: { liveness: "/livez", readiness: "/readyz", startup: "/startupz" }
      })
    }))

  it.effect("Health.layer on the Shutdown of the context, and the accessors", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const program = Effect.gen(function*() {
        yield* Health.addCheck("db", Effect.succeed(true))
        assert.strictEqual((yield* Health.readiness).status, "starting")
        yield* Health.markStarted
        assert.strictEqual((yield* Health.readiness).status, "ok")
        assert.strictEqual((yield* Health.liveness).status, "ok")
        assert.strictEqual((yield* Health.startup).status, "ok")
        assert.strictEqual(Option.getOrThrow(yield* Health.respond("/readyz")).body, `{"status":"ok"}`)
      })
      yield* program.pipe(
        Effect.provide(Health.layer().pipe(Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))))
      )
      const failed = yield* Effect.exit(
        Effect.provide(Effect.void, Health.layer({ detail: "x" as never }).pipe(Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))))
      )
      assert.isTrue(Exit.isFailure(failed))
      yield* endProgram()
    }))
})

it.effect("markStarted after the shutdown started does not make readiness ok", () =>
  Effect.gen(function*() {
    const { health, shutdown, endProgram } = yield* setup()
    yield* shutdown.trigger("x")
    health.markStartedUnsafe()
    assert.strictEqual((yield* health.readiness).status, "shuttingDown")
    assert.strictEqual((yield* health.startup).status, "ok")
    yield* endProgram()
  }))
