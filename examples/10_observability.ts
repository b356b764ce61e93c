/**
 * 10 observability: the demo's kind of service (an HTTP API and a job
 * worker) exporting traces, metrics and logs over OTLP with effect's own
 * exporters, and writing its logs as JSON lines. The shutdown itself is
 * traced: a `winddown.shutdown` span, a child per phase, one per step (the
 * worker's with what it handed back, the HTTP drain's with what it served
 * while closing), the `winddown.*` metrics, and every winddown log line with
 * its fields, all sent before the process exits.
 *
 *   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=jobs-api \
 *     PORT=3000 HEALTH_PORT=9000 node --import tsx examples/10_observability.ts
 *   curl -X POST 'localhost:3000/jobs?ms=4000'    then   kill -TERM <pid>
 *
 * Any OTLP/HTTP collector works, e.g. Jaeger all-in-one
 * (`docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one`,
 * then http://localhost:16686, service `jobs-api`, trace `winddown.shutdown`).
 * With HEALTH_PORT the probe server also answers `/metrics` for Prometheus.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Context, Effect, Layer, Logger, Queue } from "effect"
import { FetchHttpClient, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Otlp } from "effect/observability"
import { Drain, Health, Worker } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"

const settings = Config.all({
  endpoint: Config.String("OTEL_EXPORTER_OTLP_ENDPOINT").pipe(Config.withDefault("http://localhost:4318")),
  serviceName: Config.String("OTEL_SERVICE_NAME").pipe(Config.withDefault("winddown-example")),
  port: Config.Int("PORT").pipe(Config.withDefault(3000)),
  healthPort: Config.option(Config.Int("HEALTH_PORT"))
})

// Traces, metrics and logs over OTLP/JSON, plus JSON lines on stdout. The
// exporters' shutdownTimeout stays below NodeShutdown's exitGrace (1 s): with
// the collector down they give up by themselves.
const TelemetryLive = Layer.unwrap(Effect.map(settings, ({ endpoint, serviceName }) =>
  Otlp.layerJson({
    baseUrl: endpoint,
    resource: { serviceName },
    shutdownTimeout: "500 millis",
    metricsExportInterval: "5 seconds"
  }))).pipe(
    Layer.provide(FetchHttpClient.layer),
    Layer.provide(Logger.layer([Logger.consoleJson]))
  )

// The shutdown: telemetry is provided outside it (below), so its spans reach
// the exporter and its flush phase exports them.
const ShutdownLive = NodeShutdown.layerConfig({ timeout: "20 seconds", reportJson: true, reportTo: "logger" })

const main = Effect.gen(function*() {
  const { endpoint, serviceName, port, healthPort } = yield* settings
  const queue = yield* Queue.unbounded<number>()
  let next = 1

  yield* Worker.make("jobs", {
    take: queue,
    concurrency: 2,
    process: (ms) =>
      Effect.gen(function*() {
        yield* Effect.logInfo(`job of ${ms} ms started`)
        const finished = yield* Effect.sleep(ms).pipe(Effect.as(true), Drain.untilWrapUp(Effect.succeed(false)))
        if (!finished) return Worker.Requeue // checkpointed at the soft deadline: back in the queue
        yield* Effect.logInfo(`job of ${ms} ms done`)
      }).pipe(Effect.withSpan("job", { attributes: { "job.ms": ms } })),
    requeue: (ms) => Queue.offer(queue, ms)
  })

  const routes = HttpRouter.addAll([
    HttpRouter.route(
      "POST",
      "/jobs",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const ms = Number(new URL(request.url, "http://x").searchParams.get("ms") ?? 1000)
        yield* Queue.offer(queue, ms)
        return yield* HttpServerResponse.json({ id: next++, ms }, { status: 202 })
      })
    ),
    HttpRouter.route("GET", "/", Effect.succeed(HttpServerResponse.text("ok\n")))
  ])
  const http = yield* Layer.build(
    NodeHttpDrain.layer(HttpRouter.serve(routes, { disableListenLog: true, disableLogger: true }), { port })
  )
  if (healthPort._tag === "Some") {
    const probes = yield* Layer.build(NodeHealth.layerServer({ port: healthPort.value, metrics: true }))
    yield* Effect.logInfo(
      `probes and Prometheus metrics on http://localhost:${Context.get(probes, NodeHealth.ProbeServer).port}/metrics`
    )
  }
  yield* Health.markStarted
  const listening = Context.get(http, NodeHttpDrain.Server).port
  yield* Effect.logInfo(`listening on http://localhost:${listening}; pid ${process.pid}`)
  yield* Effect.logInfo(
    `sending traces, metrics and logs as ${serviceName} to ${endpoint} (set OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME to change)`
  )
  yield* Effect.logInfo(
    `try: curl -X POST 'localhost:${listening}/jobs?ms=4000', then kill -TERM ${process.pid}; ` +
      "in the collector, look for the trace winddown.shutdown: a span per phase and per step, " +
      "the jobs step with winddown.worker.completed, and the winddown.* metrics"
  )
  return yield* Effect.never
})

NodeRuntime.runMain(
  main.pipe(
    Effect.provide(Health.layer()),
    Effect.provide(ShutdownLive),
    Effect.provide(TelemetryLive)
  )
)

