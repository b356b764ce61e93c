// Spans and metrics of a shutdown, through effect's own Tracer and Metric:
// whatever tracer and metrics exporter the program provides receives them.
import { assert, describe, it } from "@effect/vitest"
import { Console, Effect, Exit, Logger, Metric, Option, Queue, References, Tracer } from "effect"
import { OtlpExporter } from "effect/observability"
import { Drain, Shutdown, ShutdownMetrics, Worker } from "../src/index.ts"
import { TestShutdown } from "../src/testing/index.ts"
import { withShutdown } from "./support/report.ts"

/** A tracer that keeps every span it makes (effect's own spans underneath). */
const collecting = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = Tracer.nativeTracer.span(options) as Tracer.Span
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const parentOf = (span: Tracer.Span) => Option.getOrUndefined(span.parent) as Tracer.Span | undefined
const attr = (span: Tracer.Span, key: string) => span.attributes.get(key)
const failedSpan = (span: Tracer.Span) => span.status._tag === "Ended" && Exit.isFailure(span.status.exit)

describe("spans", () => {
  it.effect("one span for the shutdown, a child per phase, a child of its phase per step, with outcomes", () => {
    const { spans, tracer } = collecting()
    // The tracer is there when the Shutdown is made, as when its layer is provided outside the Shutdown layer.
    return withShutdown({ timeout: "10 seconds" }, ({ shutdown, runToReport }) =>
      Effect.gen(function*() {
      yield* shutdown.addStep("close pool", Effect.sleep("100 millis"))
      yield* shutdown.addStep("upload logs", Effect.fail(new Error("bucket unreachable")))
      yield* shutdown.addStep("stuck", Effect.never, { phase: "flush", timeout: "1 second" })
      const jobs = yield* Drain.make("jobs")
      yield* jobs.run(Effect.sleep("2 seconds"))
      yield* runToReport({ reason: "deploy" })

      const root = spans.find((s) => s.name === "winddown.shutdown")!
      assert.isDefined(root)
      assert.isUndefined(parentOf(root))
      assert.strictEqual(attr(root, "winddown.reason"), "manual")
      assert.strictEqual(attr(root, "winddown.timeout_ms"), 10_000)
      assert.strictEqual(attr(root, "winddown.exit_code"), 0)
      assert.strictEqual(attr(root, "winddown.forced"), false)
      assert.isTrue(failedSpan(root), "a shutdown with a failed step is not clean")

      const phases = spans.filter((s) => parentOf(s) === root)
      assert.deepStrictEqual(phases.map((s) => s.name), [
        "winddown.readiness",
        "winddown.preStop",
        "winddown.stopAccepting",
        "winddown.drain",
        "winddown.cleanup",
        "winddown.flush"
      ])
      const phase = (name: string) => phases.find((s) => s.name === `winddown.${name}`)!
      const step = (name: string) => spans.find((s) => s.name === name)!
      assert.strictEqual(parentOf(step("close pool")), phase("cleanup"))
      assert.strictEqual(attr(step("close pool"), "winddown.step.outcome"), "ok")
      assert.isFalse(failedSpan(step("close pool")))
      assert.strictEqual(attr(step("upload logs"), "winddown.step.outcome"), "failed")
      assert.strictEqual(attr(step("upload logs"), "winddown.step.detail"), "bucket unreachable")
      assert.isTrue(failedSpan(step("upload logs")))
      assert.strictEqual(attr(step("stuck"), "winddown.step.outcome"), "timedOut")
      assert.strictEqual(attr(step("stuck"), "winddown.step.allowance_ms"), 1000)
      assert.strictEqual(attr(phase("flush"), "winddown.phase.outcome"), "timedOut")
      assert.isTrue(failedSpan(phase("flush")), "a phase that timed out")
      assert.isFalse(failedSpan(phase("drain")))
      // The drain annotates its own step's span with its counts.
      assert.strictEqual(parentOf(step("jobs")), phase("drain"))
      assert.strictEqual(attr(step("jobs"), "winddown.drain.in_flight_at_start"), 1)
      assert.strictEqual(attr(step("jobs"), "winddown.drain.finished"), 1)
      assert.strictEqual(attr(step("jobs"), "winddown.drain.interrupted"), 0)
    })).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })

  it.effect("what a step does is traced under the step's span; the shutdown span has the budget of every phase", () => {
    const { spans, tracer } = collecting()
    return withShutdown({ timeout: "10 seconds", cleanup: "2 seconds" }, ({ shutdown, runToReport }) =>
      Effect.gen(function*() {
        // Registered from inside a span of the program: the step still belongs to the shutdown's trace.
        yield* Effect.withSpan(shutdown.addStep("close pool", Effect.withSpan(Effect.void, "pool.end")), "startup")
        yield* runToReport({ reason: "deploy" })
        const inner = spans.find((s) => s.name === "pool.end")!
        const step = spans.find((s) => s.name === "close pool")!
        assert.strictEqual(parentOf(inner), step)
        assert.strictEqual(parentOf(step)?.name, "winddown.cleanup")
        const root = spans.find((s) => s.name === "winddown.shutdown")!
        assert.strictEqual(attr(root, "winddown.budget.cleanup_ms"), 2000)
        assert.strictEqual(attr(root, "winddown.budget.preStop_ms"), 0)
        assert.strictEqual(attr(root, "winddown.duration_ms"), Math.round((yield* shutdown.awaitReport).durationMs))
      })).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })

  it.effect("a worker's drain span says what it handed back", () => {
    const { spans, tracer } = collecting()
    return withShutdown({ timeout: "10 seconds", drain: "2 seconds" }, ({ runToReport }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        yield* Queue.offerAll(queue, [1, 2, 3])
        yield* Worker.make("emails", { take: queue, process: () => Effect.never, concurrency: 2 })
        yield* Effect.yieldNow
        yield* runToReport({ reason: "x" })
        const span = spans.find((s) => s.name === "emails")!
        assert.strictEqual(attr(span, "winddown.worker.taken"), 2)
        assert.strictEqual(attr(span, "winddown.worker.requeued"), 2)
        assert.strictEqual(attr(span, "winddown.drain.interrupted"), 2)
        assert.strictEqual(attr(span, "winddown.step.outcome"), "timedOut")
      })).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })

  it.effect("with effect's default tracer not one span is made", () => {
    const tracer = Tracer.nativeTracer as { span: Tracer.Tracer["span"] }
    const original = tracer.span
    let made = 0
    tracer.span = (options) => {
      made++
      return original.call(Tracer.nativeTracer, options)
    }
    return Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "10 seconds" })
      yield* shutdown.addStep("close pool", Effect.void)
      const jobs = yield* Drain.make("jobs").pipe(Effect.provideService(Shutdown.Shutdown, shutdown))
      yield* jobs.run(Effect.void)
      yield* runToReport({ reason: "x" })
      assert.strictEqual(made, 0)
    }).pipe(Effect.ensuring(Effect.sync(() => void (tracer.span = original))))
  })

  it.effect("with effect's default tracer nothing is traced (and nothing costs)", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "10 seconds" })
      yield* shutdown.addStep("close pool", Effect.void)
      const report = yield* runToReport({ reason: "x" })
      assert.strictEqual(report.exitCode, 0)
      assert.strictEqual(yield* Tracer.Tracer, Tracer.nativeTracer)
    }))
})

describe("the exporter's flush", () => {
  it.effect("with effect's OTLP Flusher in context, its buffers are exported as a flush-phase step", () =>
    Effect.gen(function*() {
      let flushes = 0
      const flusher = yield* OtlpExporter.Flusher
      yield* flusher.register(Effect.sync(() => void flushes++))
      const { runToReport } = yield* TestShutdown.make({ timeout: "10 seconds" })
      const report = yield* runToReport({ reason: "x" })
      const step = report.phases.find((p) => p.phase === "flush")!.steps.find((s) => s.name === "telemetry: flush")!
      assert.strictEqual(step.outcome, "ok")
      assert.strictEqual(flushes, 1)
    }).pipe(Effect.provide(OtlpExporter.layerFlusher), Effect.scoped))

  it("winddown finds the Flusher by effect's own key", () => {
    assert.strictEqual(OtlpExporter.Flusher.key, "effect/observability/OtlpExporter/Flusher")
  })
})

describe("metrics", () => {
  it.effect("shutdowns by reason and exit code, phase durations, steps by outcome, refused work", () =>
    withShutdown({ timeout: "10 seconds" }, ({ shutdown, runToReport }) =>
      Effect.gen(function*() {
        const read = <S>(metric: Metric.Metric<number, S>, attributes: Record<string, string>) =>
          Metric.value(Metric.withAttributes(metric, attributes))
        const before = (yield* read(ShutdownMetrics.shutdowns, { "winddown.reason": "manual", "winddown.exit_code": "0" })) as {
          count: number
        }
        yield* shutdown.addStep("ok step", Effect.void)
        yield* shutdown.addStep("bad step", Effect.fail("no"))
        const jobs = yield* Drain.make("mailer")
        yield* runToReport({ reason: "deploy" })
        yield* Effect.flip(jobs.run(Effect.void))
        const after = (yield* read(ShutdownMetrics.shutdowns, { "winddown.reason": "manual", "winddown.exit_code": "0" })) as {
          count: number
        }
        assert.strictEqual(after.count - before.count, 1)
        const failed = (yield* read(ShutdownMetrics.steps, { "winddown.phase": "cleanup", "winddown.step.outcome": "failed" })) as {
          count: number
        }
        assert.isAtLeast(failed.count, 1)
        const cleanup = (yield* read(ShutdownMetrics.phaseDuration, { "winddown.phase": "cleanup" })) as { count: number }
        assert.isAtLeast(cleanup.count, 1)
        const refused = (yield* read(ShutdownMetrics.refused, { "winddown.drain": "mailer" })) as { count: number }
        assert.strictEqual(refused.count, 1)
      })))

  it("every metric is defined once, with a unit and attributes", () => {
    const names = ShutdownMetrics.definitions.map((d) => d.name)
    assert.strictEqual(new Set(names).size, names.length)
    for (const d of ShutdownMetrics.definitions) {
      assert.match(d.name, /^winddown\.[a-z_.]+$/)
      assert.isAbove(d.unit.length, 0)
    }
  })
})

describe("log fields", () => {
  it.effect("a worker's own warnings carry winddown fields for a structured logger", () => {
    const records: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const capture = Logger.make((options) => {
      records.push({ message: options.message, annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) } })
    })
    return withShutdown({ timeout: "10 seconds" }, ({ runToReport }) =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<number>()
        yield* Queue.offer(queue, 1)
        yield* Worker.make("emails", { take: queue, process: () => Effect.fail("smtp down") })
        yield* Effect.yieldNow
        yield* runToReport({ reason: "x" })
        const failed = records.find((r) => String((r.message as Array<unknown>)[0]).includes("process failed"))
        assert.isDefined(failed)
        assert.strictEqual(failed!.annotations["winddown.worker"], "emails")
        assert.include(String(failed!.annotations["winddown.cause"]), "smtp down")
      })).pipe(Effect.provide(Logger.layer([capture])))
  })

  it.effect("a drain that runs out of time says which, as a field", () => {
    const records: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const capture = Logger.make((options) => {
      records.push({ message: options.message, annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) } })
    })
    return withShutdown({ timeout: "10 seconds", drain: "2 seconds" }, ({ runToReport }) =>
      Effect.gen(function*() {
        const jobs = yield* Drain.make("uploads")
        yield* jobs.run(Effect.never)
        yield* runToReport({ reason: "x" })
        const warning = records.find((r) => String(r.message).includes(`drain "uploads" timed out`))
        assert.isDefined(warning, JSON.stringify(records.map((r) => r.message)))
        assert.strictEqual(warning!.annotations["winddown.drain"], "uploads")
      })).pipe(Effect.provide(Logger.layer([capture])))
  })

  it.effect("with effect's default logger alone, a line is its text only: no fields", () => {
    const printed: Array<ReadonlyArray<unknown>> = []
    const console = { ...globalThis.console, log: (...args: ReadonlyArray<unknown>) => void printed.push(args) }
    return withShutdown({ timeout: "10 seconds" }, ({ shutdown, runToReport }) =>
      Effect.gen(function*() {
        yield* shutdown.addStep("close pool", Effect.void)
        yield* runToReport({ reason: "x" })
        const line = printed.find((args) => args.some((a) => String(a).includes(`"close pool" done`)))
        assert.isDefined(line)
        assert.isTrue(line!.every((a) => typeof a === "string"), `only text: ${JSON.stringify(line)}`)
      })).pipe(Effect.provideService(Console.Console, console as Console.Console))
  })
})
