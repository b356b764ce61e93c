/**
 * Health probes over real sockets on 127.0.0.1: the probe server of our own
 * through a whole shutdown, `Health.routes` on an effect HttpRouter served by
 * NodeHttpServer, and the plain handler on a `node:http` server. Behaviour
 * only: which answers, in which phase; no timing assertions.
 */
import * as http from "node:http"
import type * as net from "node:net"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Metric } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Drain, Health, Shutdown, ShutdownMetrics, ShutdownReport } from "../../src/index.ts"
import { NodeHealth } from "../../src/node/index.ts"
import { TestShutdown } from "../../src/testing/index.ts"

const host = "127.0.0.1"

interface Answer {
  readonly status: number
  readonly body: string
  readonly connection: string | undefined
  readonly contentType: string | undefined
}

type Outcome = Answer | { readonly error: string }

/** A keep-alive agent, so that `Connection: close` in an answer comes from the server. */
const keepAlive = new http.Agent({ keepAlive: true })

const request = (port: number, path: string, method = "GET"): Effect.Effect<Outcome> =>
  Effect.callback<Outcome>((resume) => {
    const req = http.request({ host, port, path, method, agent: keepAlive }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => void (body += chunk))
      res.once("end", () =>
        resume(Effect.succeed({
          status: res.statusCode ?? 0,
          body,
          connection: res.headers.connection,
          contentType: res.headers["content-type"]
        }))
      )
    })
    req.once("error", (e: NodeJS.ErrnoException) => resume(Effect.succeed({ error: e.code ?? e.message })))
    req.end()
  })

const get = (port: number, path: string, method = "GET") =>
  Effect.flatMap(request(port, path, method), (outcome) =>
    "error" in outcome ? Effect.die(new Error(`${method} ${path}: ${outcome.error}`)) : Effect.succeed(outcome)
  )

const statusAndBody = (port: number, path: string) => Effect.map(get(port, path), (a) => [a.status, a.body] as const)

const untilStatus = (shutdown: Shutdown.Service, status: string) =>
  Effect.gen(function*() {
    while ((yield* shutdown.status) !== status) yield* Effect.sleep("5 millis")
  })

const listen = (server: net.Server) =>
  Effect.callback<number>((resume) => {
    server.listen(0, host, () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
  })

describe("NodeHealth.layerServer", () => {
  it.live("answers readiness 503 / liveness 200 during preStop, drain and cleanup, and closes in flush", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make({ timeout: "20 seconds", preStop: "1 second" })
      const layer = NodeHealth.layerServer({ port: 0, host }).pipe(
        Layer.provideMerge(Health.layer()),
        Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
      )
      const context = yield* Layer.build(layer)
      const { port } = Context.get(context, NodeHealth.ProbeServer)
      const health = Context.get(context, Health.Health)
      assert.isAbove(port, 0)

      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"starting"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/startupz"), [503, `{"status":"starting"}`])
      yield* health.markStarted
      const ready = yield* get(port, "/readyz")
      assert.deepStrictEqual([ready.status, ready.body, ready.connection, ready.contentType], [
        200, `{"status":"ok"}`, "close", "application/json"
      ])
      const notFound = yield* get(port, "/")
      assert.deepStrictEqual([notFound.status, notFound.connection], [404, "close"])

      // a drain step we hold open, and a cleanup step that probes the server itself
      const gate = yield* Deferred.make<void>()
      yield* shutdown.addStep("requests", Deferred.await(gate), { phase: "drain" })
      const inCleanup: Array<readonly [number, string]> = []
      yield* shutdown.addStep(
        "probe from cleanup",
        Effect.all([statusAndBody(port, "/livez"), statusAndBody(port, "/readyz")]).pipe(
          Effect.map((answers) => void inCleanup.push(...answers))
        )
      )

      yield* shutdown.trigger("deploy")
      yield* untilStatus(shutdown, "preStop")
      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"shuttingDown"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/livez"), [200, `{"status":"ok"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/startupz"), [200, `{"status":"ok"}`])

      yield* untilStatus(shutdown, "drain")
      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"shuttingDown"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/livez"), [200, `{"status":"ok"}`])

      yield* Deferred.succeed(gate, undefined)
      yield* endProgram()
      const report = yield* shutdown.awaitReport
      assert.deepStrictEqual(inCleanup, [[200, `{"status":"ok"}`], [503, `{"status":"shuttingDown"}`]])
      const step = ShutdownReport.steps(report).find((s) => s.name === NodeHealth.defaults.stepName)
      assert.deepStrictEqual([step?.phase, step?.outcome], ["flush", "ok"])
      const after = yield* request(port, "/livez")
      assert.deepStrictEqual(after, { error: "ECONNREFUSED" })
    }))

  it.live("detail checks over the wire, HEAD without a body, custom paths", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const layer = NodeHealth.layerServer({ port: 0, host, detail: "checks", paths: { readiness: "/ready" } }).pipe(
        Layer.provideMerge(Health.layer({ startedImmediately: true })),
        Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
      )
      const context = yield* Layer.build(layer)
      const { port } = Context.get(context, NodeHealth.ProbeServer)
      const health = Context.get(context, Health.Health)
      yield* health.addCheck("db", Effect.fail(new Error("connection refused")))
      const ready = yield* get(port, "/ready?full")
      assert.strictEqual(ready.status, 503)
      assert.deepStrictEqual(JSON.parse(ready.body), {
        status: "failing",
        checks: { db: { status: "failing", durationMs: JSON.parse(ready.body).checks.db.durationMs, error: "connection refused" } }
      })
      assert.strictEqual((yield* get(port, "/readyz")).status, 404)
      const head = yield* get(port, "/livez", "HEAD")
      assert.deepStrictEqual([head.status, head.body], [200, ""])
      assert.strictEqual((yield* get(port, "/livez", "POST")).status, 404)
      yield* endProgram()
      yield* shutdown.awaitReport
    }))

  it.live("bad options and a taken port are ProbeServerErrors", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const build = (options: NodeHealth.ServerOptions) =>
        Effect.flip(Layer.build(NodeHealth.layerServer(options).pipe(
          Layer.provide(Health.layer()),
          Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
        )))
      const badPort = yield* build({ port: -1 })
      assert.strictEqual(badPort._tag, "ShutdownConfigError")
      assert.include(badPort.message, "-1")
      const badDetail = yield* build({ port: 0, detail: "all" as never })
      assert.include(badDetail.message, `"all"`)
      const badPath = yield* build({ port: 0, paths: { liveness: "livez" as never } })
      assert.strictEqual(badPath._tag, "ShutdownConfigError")

      const taken = http.createServer()
      const port = yield* listen(taken)
      const inUse = yield* build({ port, host })
      taken.close()
      assert.deepStrictEqual([inUse._tag, (inUse as NodeHealth.ProbeServerError).reason], ["ProbeServerError", "Listen"])
      assert.include(inUse.message, String(port))
      yield* endProgram()
      yield* shutdown.awaitReport
    }))
})

/** One sample of Prometheus text format: `name{labels} value`. */
interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parse Prometheus text exposition (version 0.0.4): the TYPE of each family, and every sample. */
const parseExposition = (text: string) => {
  const types = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith("#")) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.isNotNull(sample, `not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, key, value] of sample![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) {
      labels[key!] = value!
    }
    samples.push({ name: sample![1]!, labels, value: Number(sample![3]) })
  }
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return { types, samples, find }
}

const scrape = (port: number) =>
  Effect.map(get(port, "/metrics"), (answer) => {
    assert.strictEqual(answer.status, 200)
    assert.strictEqual(answer.contentType, "text/plain; version=0.0.4; charset=utf-8")
    assert.strictEqual(answer.connection, "close")
    return parseExposition(answer.body)
  })

describe("NodeHealth.layerServer: Prometheus at /metrics", () => {
  const probeServer = (shutdown: Shutdown.Service, options: Partial<NodeHealth.ServerOptions> = {}) =>
    Effect.map(
      Layer.build(NodeHealth.layerServer({ port: 0, host, ...options }).pipe(
        Layer.provide(Health.layer({ startedImmediately: true })),
        Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
      )),
      (context) => Context.get(context, NodeHealth.ProbeServer).port
    )

  it.live("off by default: /metrics is 404", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const port = yield* probeServer(shutdown)
      assert.strictEqual((yield* get(port, "/metrics")).status, 404)
      yield* endProgram()
      yield* shutdown.awaitReport
    }))

  it.live("scraped during a shutdown: the phases and steps so far, the drain in flight, refused work, the program's own metrics", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make({ timeout: "20 seconds", progressInterval: "20 millis" })
      const port = yield* probeServer(shutdown, { metrics: true })
      yield* Metric.update(Metric.counter("app.requests", { incremental: true }), 7)
      const jobs = yield* Drain.make("jobs").pipe(Effect.provideService(Shutdown.Shutdown, shutdown))
      const gate = yield* Deferred.make<void>()
      yield* jobs.run(Deferred.await(gate))
      yield* shutdown.addStep("stop consumer", Effect.void, { phase: "stopAccepting" })
      let inCleanup: ReturnType<typeof parseExposition> | undefined
      yield* shutdown.addStep("scrape from cleanup", Effect.gen(function*() {
        yield* Effect.flip(jobs.run(Effect.void)) // refused: the drain is over
        inCleanup = yield* scrape(port)
      }))

      const before = yield* scrape(port)
      assert.deepInclude(before.find("app_requests")!, { value: 7 })
      assert.strictEqual(before.types.get("app_requests"), "counter")

      yield* shutdown.trigger("deploy")
      yield* untilStatus(shutdown, "drain")
      // The gauge is sampled at each progress tick: scrape until the first tick.
      let during = yield* scrape(port)
      while (during.find("winddown_drain_in_flight", { winddown_drain: "jobs" }) === undefined) {
        yield* Effect.sleep("10 millis")
        during = yield* scrape(port)
      }
      assert.strictEqual(during.types.get("winddown_drain_in_flight"), "gauge")
      assert.strictEqual(during.find("winddown_drain_in_flight", { winddown_drain: "jobs" })!.value, 1)
      assert.strictEqual(during.types.get("winddown_phase_duration_seconds"), "histogram")
      for (const phase of ["readiness", "preStop", "stopAccepting"]) {
        assert.strictEqual(during.find("winddown_phase_duration_seconds_count", { winddown_phase: phase })?.value, 1, phase)
        assert.strictEqual(
          during.find("winddown_phase_duration_seconds_bucket", { winddown_phase: phase, le: "+Inf" })?.value,
          1,
          phase
        )
      }
      assert.isUndefined(during.find("winddown_phase_duration_seconds_count", { winddown_phase: "drain" }))
      assert.strictEqual(during.types.get("winddown_steps_total"), "counter")
      assert.deepInclude(
        during.find("winddown_steps_total", { winddown_phase: "stopAccepting", winddown_step_outcome: "ok" })!,
        { value: 1 }
      )
      assert.isFalse(during.samples.some((s) => "unit" in s.labels), "the unit is not a label")

      yield* Deferred.succeed(gate, undefined)
      yield* endProgram()
      yield* shutdown.awaitReport
      assert.isDefined(inCleanup)
      assert.strictEqual(inCleanup!.find("winddown_phase_duration_seconds_count", { winddown_phase: "drain" })?.value, 1)
      assert.isAtLeast(
        inCleanup!.find("winddown_steps_total", { winddown_phase: "drain", winddown_step_outcome: "ok" })!.value,
        1
      )
      assert.strictEqual(inCleanup!.find("winddown_drain_refused_total", { winddown_drain: "jobs" })?.value, 1)
      // The probe server closed in flush: what comes after (the shutdown's own counter) is for OTLP.
      assert.deepStrictEqual(yield* request(port, "/metrics"), { error: "ECONNREFUSED" })
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.live("every winddown metric under its Prometheus name and type", () =>
    Effect.gen(function*() {
      // A shutdown that ran to its report before this scrape: its counter is there.
      const first = yield* TestShutdown.make()
      yield* first.shutdown.trigger("deploy")
      yield* first.endProgram()
      yield* first.shutdown.awaitReport
      const histogram = (m: typeof ShutdownMetrics.phaseDuration) => Metric.update(m, 0.2)
      yield* Metric.update(ShutdownMetrics.inFlight, 3)
      yield* Metric.update(ShutdownMetrics.refused, 1)
      yield* Metric.update(ShutdownMetrics.servedWhileClosing, 2)
      yield* Metric.update(ShutdownMetrics.connectionsDestroyed, 0)
      yield* histogram(ShutdownMetrics.phaseDuration)

      const { shutdown, endProgram } = yield* TestShutdown.make()
      const port = yield* probeServer(shutdown, { metrics: true })
      const text = yield* scrape(port)
      for (const d of ShutdownMetrics.definitions) {
        const name = ShutdownMetrics.prometheusName(d)
        assert.strictEqual(text.types.get(name), d.kind, `${d.name} is exposed as ${name}, a ${d.kind}`)
      }
      assert.deepInclude(text.find("winddown_shutdowns_total", { winddown_reason: "manual", winddown_exit_code: "0" })!, {
        value: 1
      })
      assert.deepStrictEqual(
        ShutdownMetrics.definitions.map(ShutdownMetrics.prometheusName),
        [
          "winddown_shutdowns_total",
          "winddown_shutdown_duration_seconds",
          "winddown_phase_duration_seconds",
          "winddown_steps_total",
          "winddown_drain_in_flight",
          "winddown_drain_refused_total",
          "winddown_http_served_while_closing_total",
          "winddown_http_connections_destroyed_total"
        ]
      )
      yield* endProgram()
      yield* shutdown.awaitReport
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))
})

describe("Health.routes", () => {
  it.live("mounted on an effect HttpRouter next to the app's routes, served by NodeHttpServer", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const server = http.createServer()
      const app = Layer.mergeAll(
        HttpRouter.add("GET", "/", HttpServerResponse.text("app")),
        Health.routes()
      ).pipe(
        (routes) => HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }),
        Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host })),
        Layer.provideMerge(Health.layer()),
        Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
      )
      const context = yield* Layer.build(app)
      const health = Context.get(context, Health.Health)
      const port = (server.address() as net.AddressInfo).port

      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"starting"}`])
      yield* health.markStarted
      const ready = yield* get(port, "/readyz")
      assert.deepStrictEqual([ready.status, ready.body, ready.contentType], [200, `{"status":"ok"}`, "application/json"])
      assert.deepStrictEqual(yield* statusAndBody(port, "/startupz"), [200, `{"status":"ok"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/"), [200, "app"])

      yield* shutdown.trigger("deploy")
      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"shuttingDown"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/livez"), [200, `{"status":"ok"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/"), [200, "app"])
      yield* endProgram()
      yield* shutdown.awaitReport
    }))

  it.live("routes with custom paths and detail under a prefix-free router", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const server = http.createServer()
      const app = Health.routes({ paths: { liveness: "/health/live" }, detail: "checks" }).pipe(
        (routes) => HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }),
        Layer.provide(NodeHttpServer.layer(() => server, { port: 0, host })),
        Layer.provideMerge(Health.layer()),
        Layer.provide(Layer.succeed(Shutdown.Shutdown, shutdown))
      )
      yield* Layer.build(app)
      const port = (server.address() as net.AddressInfo).port
      assert.deepStrictEqual(yield* statusAndBody(port, "/health/live"), [200, `{"status":"ok","checks":{}}`])
      assert.strictEqual((yield* get(port, "/livez")).status, 404)
      yield* endProgram()
      yield* shutdown.awaitReport
    }))
})

describe("NodeHealth.handler", () => {
  it.live("answers probe paths on a plain node:http server and hands every other request on", () =>
    Effect.gen(function*() {
      const { shutdown, endProgram } = yield* TestShutdown.make()
      const health = yield* Health.make().pipe(Effect.provideService(Shutdown.Shutdown, shutdown))
      const probes = NodeHealth.handler(health)
      const server = http.createServer((req, res) => {
        if (probes(req, res)) return
        res.end("app")
      })
      yield* Effect.acquireRelease(listen(server), () =>
        Effect.sync(() => {
          server.close()
          server.closeAllConnections()
        }))
      const port = (server.address() as net.AddressInfo).port

      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"starting"}`])
      health.markStartedUnsafe()
      const ready = yield* get(port, "/readyz")
      // the app's server keeps its keep-alive; only the probe server closes
      assert.deepStrictEqual([ready.status, ready.body, ready.connection], [200, `{"status":"ok"}`, "keep-alive"])
      assert.deepStrictEqual(yield* statusAndBody(port, "/orders"), [200, "app"])
      assert.deepStrictEqual([(yield* get(port, "/readyz", "POST")).body], ["app"])
      yield* shutdown.trigger("deploy")
      assert.deepStrictEqual(yield* statusAndBody(port, "/readyz"), [503, `{"status":"shuttingDown"}`])
      assert.deepStrictEqual(yield* statusAndBody(port, "/livez"), [200, `{"status":"ok"}`])
      assert.throws(() => NodeHealth.handler(health, { paths: { readiness: "/livez" } }), /differ/)
      yield* endProgram()
      yield* shutdown.awaitReport
    }))
})
