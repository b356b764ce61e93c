// The exporter outlives the shutdown, end to end: a service exporting with
// effect's own OTLP exporters (provided outside the Shutdown layer, as the
// README shows) gets a real SIGTERM, and a real OTLP/HTTP receiver in this
// process decodes what arrives. The spans, metrics and log lines of the
// shutdown itself must be there when the process has exited; with the
// collector down or stuck, the process still exits inside its budget with
// its normal exit code.
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Option } from "effect"
import * as http from "node:http"
import * as path from "node:path"
import { Phase, ShutdownReport } from "../src/index.ts"
import { ChildProcess } from "../src/testing/index.ts"
import * as Otlp from "./support/otlp.ts"

const fixture = path.join(import.meta.dirname, "fixtures", "otlp_service.ts")
/** The fixture's `timeout`. */
const budgetMs = 6000

const receivers: Array<Otlp.Receiver> = []
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()))
})
const receiver = async (mode: "ok" | "hang" = "ok") => {
  const r = await Otlp.start({ mode })
  receivers.push(r)
  return r
}

const get = (port: number, urlPath: string, agent: http.Agent) =>
  new Promise<{ status: number; connection: string }>((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: urlPath, agent }, (res) => {
      res.resume()
      res.once("end", () => resolve({ status: res.statusCode ?? 0, connection: String(res.headers.connection ?? "") }))
    }).once("error", reject)
  })

/**
 * Start the service against `baseUrl`; with `request`, a 600 ms request is
 * in flight (on an accepted keep-alive socket) when SIGTERM is sent.
 */
const stopService = async (
  baseUrl: string,
  env: Record<string, string>,
  options: { readonly request: boolean }
) => {
  const child = ChildProcess.spawn(fixture, { env: { OTLP_BASE_URL: baseUrl, ...env }, killAfterMs: 45_000 })
  const port = Number(/ready on port (\d+)/.exec(await child.waitFor(/ready on port \d+/))![1])
  let answer: Promise<{ status: number; connection: string }> | undefined
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  try {
    if (options.request) {
      assert.strictEqual((await get(port, "/work?ms=1", agent)).status, 200)
      answer = get(port, "/work?ms=600", agent)
      await child.waitFor("work started 600")
    }
    child.signal("SIGTERM")
    const exited = await child.exited
    return { exited, answer: await answer }
  } finally {
    agent.destroy()
  }
}

const byName = (spans: ReadonlyArray<Otlp.Span>, name: string) => {
  const found = spans.filter((s) => s.name === name)
  assert.strictEqual(found.length, 1, `one span named "${name}", got ${found.length}`)
  return found[0]!
}

/** Everything a collector should have from the fixture's shutdown, checked against its own report. */
const assertDelivered = (r: Otlp.Receiver) => {
  assert.deepStrictEqual(r.errors, [])

  // The report itself, through the program's logger (reportTo: "logger").
  const reportLog = r.logs.find((l) => l.attributes.event === ShutdownReport.event)
  assert.isDefined(reportLog, "the report's log record")
  const report = Option.getOrThrow(ShutdownReport.fromJsonLine(String(reportLog!.body)))
  assert.strictEqual(report.exitCode, 0)

  // Spans: the shutdown, a child per phase, a child of its phase per step.
  const root = byName(r.spans, "winddown.shutdown")
  assert.isUndefined(root.parentSpanId)
  assert.strictEqual(root.resource["service.name"], "otlp-fixture")
  assert.deepInclude(root.attributes, {
    "winddown.reason": "signal",
    "winddown.signal": "SIGTERM",
    "winddown.timeout_ms": budgetMs,
    "winddown.exit_code": 0,
    "winddown.forced": false,
    "winddown.steps_not_ok": 0,
    "winddown.duration_ms": Math.round(report.durationMs)
  })
  assert.strictEqual(root.statusCode, 1, "a clean shutdown's span is ok")
  for (const phase of report.phases) {
    const span = byName(r.spans, `winddown.${phase.phase}`)
    assert.strictEqual(span.parentSpanId, root.spanId, phase.phase)
    assert.strictEqual(span.traceId, root.traceId)
    assert.deepInclude(span.attributes, {
      "winddown.phase": phase.phase,
      "winddown.phase.outcome": phase.outcome,
      "winddown.phase.allowance_ms": Math.round(phase.allowanceMs),
      "winddown.phase.steps": phase.steps.length
    })
    for (const step of phase.steps) {
      const stepSpan = byName(r.spans, step.name)
      assert.strictEqual(stepSpan.parentSpanId, span.spanId, step.name)
      assert.deepInclude(stepSpan.attributes, {
        "winddown.phase": phase.phase,
        "winddown.step.name": step.name,
        "winddown.step.outcome": step.outcome,
        "winddown.step.allowance_ms": Math.round(step.allowanceMs!),
        "winddown.step.duration_ms": Math.round(step.durationMs!)
      })
    }
  }
  assert.deepStrictEqual(report.phases.map((p) => p.phase), [...Phase.all])
  assert.sameMembers(
    ShutdownReport.steps(report).map((s) => s.name),
    ["http: close listener", "main program", "jobs", "http: drain requests", "close db", "telemetry: flush"]
  )
  // Drain counts on the drain's and the HTTP drain's step spans.
  assert.deepInclude(byName(r.spans, "jobs").attributes, {
    "winddown.drain.in_flight_at_start": 1,
    "winddown.drain.finished": 1,
    "winddown.drain.interrupted": 0
  })
  assert.deepInclude(byName(r.spans, "http: drain requests").attributes, {
    "winddown.http.served_while_closing": 1,
    "winddown.http.destroyed": 0,
    "winddown.http.drained": true
  })

  // Metrics: counters as monotonic sums with their units, durations as histograms in seconds.
  const shutdowns = Otlp.latest(r, "winddown.shutdowns", { "winddown.reason": "signal", "winddown.exit_code": "0" })
  assert.isDefined(shutdowns, "winddown.shutdowns")
  assert.deepInclude(shutdowns!, { type: "sum", monotonic: true, unit: "{shutdown}", value: 1 })
  assert.deepInclude(Otlp.latest(r, "winddown.shutdown.duration", { "winddown.reason": "signal" })!, {
    type: "histogram",
    unit: "s",
    count: 1
  })
  for (const phase of Phase.all) {
    const point = Otlp.latest(r, "winddown.phase.duration", { "winddown.phase": phase })
    assert.isDefined(point, `winddown.phase.duration of ${phase}`)
    assert.deepInclude(point!, { type: "histogram", unit: "s", count: 1 })
  }
  assert.strictEqual(Otlp.latest(r, "winddown.steps", { "winddown.phase": "drain", "winddown.step.outcome": "ok" })?.value, 3)
  assert.strictEqual(Otlp.latest(r, "winddown.http.served_while_closing", { "winddown.http.server": "http" })?.value, 1)
  assert.strictEqual(Otlp.latest(r, "winddown.http.connections_destroyed", { "winddown.http.server": "http" })?.value, 0)
  const inFlight = Otlp.latest(r, "winddown.drain.in_flight", { "winddown.drain": "jobs" })
  assert.deepInclude(inFlight!, { type: "gauge", unit: "{unit}" })

  // Log lines as data, in the shutdown's trace.
  const line = (pattern: RegExp) => {
    const found = r.logs.find((l) => pattern.test(String(l.body)))
    assert.isDefined(found, `a log record matching ${pattern}`)
    assert.strictEqual(found!.traceId, root.traceId, `${pattern} is in the shutdown's trace`)
    return found!
  }
  assert.deepInclude(line(/^\[winddown\] shutting down: signal SIGTERM/).attributes, {
    "winddown.reason": "signal",
    "winddown.signal": "SIGTERM",
    "winddown.timeout_ms": budgetMs
  })
  for (const step of ShutdownReport.steps(report)) {
    const record = line(new RegExp(`^\\[winddown\\] ${step.phase} \\d/\\d "${step.name}" done`))
    assert.deepInclude(record.attributes, {
      "winddown.phase": step.phase,
      "winddown.step.name": step.name,
      "winddown.step.outcome": "ok"
    })
    assert.strictEqual(record.severityText, "Info")
  }
  assert.deepInclude(line(/^\[winddown\] drain: 3 steps, up to /).attributes, {
    "winddown.phase": "drain",
    "winddown.allowance_ms": Math.round(report.phases.find((p) => p.phase === "drain")!.allowanceMs),
    "winddown.steps": 3
  })
  assert.deepInclude(line(/^\[winddown\] draining: /).attributes, { "winddown.phase": "drain" })
  assert.isNumber(line(/^\[winddown\] draining: /).attributes["winddown.remaining_ms"])
  assert.deepInclude(line(/^\[winddown\] http: draining 1 requests on 1 connections/).attributes, {
    "winddown.phase": "drain",
    "winddown.http.server": "http",
    "winddown.http.active_requests": 1,
    "winddown.http.connections": 1
  })
  assert.deepInclude(line(/^\[winddown\] shutdown complete/).attributes, {
    "winddown.exit_code": 0,
    "winddown.not_ok": 0,
    "winddown.steps": 6,
    "winddown.duration_ms": Math.round(report.durationMs)
  })
  // The shutdown span has the budget of every phase.
  for (const phase of report.phases) {
    assert.strictEqual(root.attributes[`winddown.budget.${phase.phase}_ms`], Math.round(phase.allowanceMs), phase.phase)
  }
}

// Children start slowly on a loaded machine (tsx compiles effect): a generous timeout.
describe("OTLP export of the shutdown itself", { concurrent: true, timeout: 90_000 }, () => {
  for (const protocol of ["json", "protobuf"] as const) {
    it(`${protocol}: every phase and step span, the shutdown metrics and log lines reach the collector before the exit`, async () => {
      const r = await receiver()
      const { exited, answer } = await stopService(r.url, { OTLP_PROTOCOL: protocol, OTLP_SHUTDOWN_TIMEOUT: "500 millis" }, {
        request: true
      })
      assert.deepStrictEqual(answer, { status: 200, connection: "close" })
      assert.strictEqual(exited.code, 0, exited.output)
      assert.isBelow(exited.elapsedMs, budgetMs, exited.output)
      assert.notInclude(exited.output, "still alive", "the exporters finished by themselves")
      // Checked the moment the process is gone: no wait for stragglers.
      assertDelivered(r)
      const contentTypes = new Set(r.requests.map((q) => q.contentType))
      assert.deepStrictEqual([...contentTypes], [protocol === "json" ? "application/json" : "application/x-protobuf"])
    })
  }

  it("collector down: the flush step is bounded by its phase, the exit is inside the budget with code 0", async () => {
    const { exited } = await stopService(await Otlp.unreachableUrl(), { OTLP_SHUTDOWN_TIMEOUT: "500 millis" }, {
      request: false
    })
    assert.strictEqual(exited.code, 0, exited.output)
    assert.isBelow(exited.elapsedMs, budgetMs, exited.output)
    assert.match(exited.output, /flush 1\/1 "telemetry: flush" timed out in \d+ ms: ran past its flush allowance/)
    assert.include(exited.output, "1 not ok, exit code 0")
    assert.notInclude(exited.output, "still alive", "shutdownTimeout below exitGrace: the exporters gave up by themselves")
  })

  it("collector stuck (accepts, never answers): the exit is inside the budget with code 0", async () => {
    const r = await receiver("hang")
    const { exited } = await stopService(r.url, { OTLP_SHUTDOWN_TIMEOUT: "500 millis" }, { request: false })
    assert.strictEqual(exited.code, 0, exited.output)
    assert.isBelow(exited.elapsedMs, budgetMs, exited.output)
    assert.isAbove(r.requests.length, 0, "the exporters did reach it")
    assert.match(exited.output, /"telemetry: flush" timed out/)
    assert.notInclude(exited.output, "still alive")
  })

  it("collector stuck, effect's default shutdownTimeout (3 s, above exitGrace): winddown ends the process after exitGrace, code 0", async () => {
    const r = await receiver("hang")
    const { exited } = await stopService(r.url, {}, { request: false })
    assert.strictEqual(exited.code, 0, exited.output)
    assert.isBelow(exited.elapsedMs, budgetMs, exited.output)
    assert.match(exited.output, /the shutdown ended 1 s ago but the process is still alive .*; exiting with 0/)
  })

  for (const order of ["inside", "releaseAs"] as const) {
    it(`telemetry provided ${order === "inside" ? "inside the Shutdown layer" : "through Shutdown.releaseAs"}: the exporter works, but no span of the shutdown reaches it`, async () => {
      const r = await receiver()
      const { exited } = await stopService(r.url, { OTLP_ORDER: order, OTLP_SHUTDOWN_TIMEOUT: "500 millis" }, { request: true })
      assert.strictEqual(exited.code, 0, exited.output)
      assert.isDefined(r.spans.find((s) => s.name === "GET"), "the program's own request span arrived")
      assert.deepStrictEqual(r.spans.filter((s) => s.name.startsWith("winddown.")).map((s) => s.name), [])
      // Nor the sequence's own lines (a step registered by the program still logs through the program's loggers).
      assert.deepStrictEqual(
        r.logs.filter((l) => /^\[winddown\] (shutting down|shutdown complete)/.test(String(l.body))).map((l) => l.body),
        []
      )
      assert.isUndefined(Otlp.latest(r, "winddown.shutdowns"))
    })
  }
})
