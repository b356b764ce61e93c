/**
 * A real OTLP/HTTP receiver for tests: a `node:http` server implementing
 * `POST /v1/traces`, `/v1/metrics` and `/v1/logs` the way a collector does,
 * decoding what a real exporter sends (OTLP/JSON or OTLP/protobuf, gzip or
 * not) into flat records that tests can search: spans with their attributes
 * as a plain object, metric data points, log records.
 *
 * `mode: "hang"` accepts every request and never answers (a collector that
 * is stuck); for a collector that is down, use {@link unreachableUrl}.
 */
import * as http from "node:http"
import type * as net from "node:net"
import * as zlib from "node:zlib"

export type Attributes = Record<string, unknown>

export interface Span {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly startNs: bigint
  readonly endNs: bigint
  readonly attributes: Attributes
  /** 0 unset, 1 ok, 2 error */
  readonly statusCode: number
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Attributes }>
  readonly resource: Attributes
}

export interface DataPoint {
  readonly metric: string
  readonly description: string
  readonly unit: string
  readonly type: "sum" | "gauge" | "histogram" | "summary"
  readonly monotonic: boolean | undefined
  readonly attributes: Attributes
  /** sum and gauge */
  readonly value: number | undefined
  /** histogram and summary */
  readonly count: number | undefined
  readonly sum: number | undefined
  readonly bucketCounts: ReadonlyArray<number> | undefined
  readonly explicitBounds: ReadonlyArray<number> | undefined
  readonly timeNs: bigint
  readonly resource: Attributes
}

export interface LogRecord {
  readonly body: unknown
  readonly severityText: string | undefined
  readonly attributes: Attributes
  readonly traceId: string | undefined
  readonly spanId: string | undefined
  readonly timeNs: bigint
  readonly resource: Attributes
}

export interface Request {
  readonly path: string
  readonly contentType: string
  readonly encoding: string | undefined
  readonly at: number
}

export interface Receiver {
  readonly port: number
  /** The base URL to give an exporter (`Otlp.layerJson({ baseUrl })`, `OTEL_EXPORTER_OTLP_ENDPOINT`). */
  readonly url: string
  readonly spans: Array<Span>
  readonly dataPoints: Array<DataPoint>
  readonly logs: Array<LogRecord>
  readonly requests: Array<Request>
  /** Bodies that could not be decoded (the test should fail on them). */
  readonly errors: Array<string>
  /** Resolves once `ready()` is true (checked at every request); rejects after `timeoutMs`. */
  readonly waitFor: (ready: () => boolean, timeoutMs?: number) => Promise<void>
  readonly close: () => Promise<void>
}

// ---------------------------------------------------------------------------
// OTLP/JSON into flat records
// ---------------------------------------------------------------------------

type Json = any

/** An OTLP AnyValue as a plain value (int64 strings become numbers). */
export const anyValue = (v: Json): unknown => {
  if (v === undefined || v === null) return undefined
  if ("stringValue" in v) return v.stringValue
  if ("boolValue" in v) return v.boolValue
  if ("intValue" in v) return Number(v.intValue)
  if ("doubleValue" in v) return Number(v.doubleValue)
  if ("arrayValue" in v) return (v.arrayValue.values ?? []).map(anyValue)
  if ("kvlistValue" in v) return keyValues(v.kvlistValue.values)
  if ("bytesValue" in v) return v.bytesValue
  return undefined
}

const keyValues = (list: Json): Attributes => {
  const out: Attributes = {}
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value)
  return out
}

const nanos = (v: Json): bigint => (v === undefined ? 0n : BigInt(v))
const optionalNumber = (v: Json): number | undefined => (v === undefined ? undefined : Number(v))
const hexId = (v: Json): string | undefined => (v === undefined || v === "" ? undefined : String(v))

const flattenTraces = (body: Json, into: Array<Span>) => {
  for (const rs of body.resourceSpans ?? []) {
    const resource = keyValues(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        into.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: hexId(s.parentSpanId),
          name: s.name,
          startNs: nanos(s.startTimeUnixNano),
          endNs: nanos(s.endTimeUnixNano),
          attributes: keyValues(s.attributes),
          statusCode: Number(s.status?.code ?? 0),
          events: (s.events ?? []).map((e: Json) => ({ name: e.name, attributes: keyValues(e.attributes) })),
          resource
        })
      }
    }
  }
}

const flattenMetrics = (body: Json, into: Array<DataPoint>) => {
  for (const rm of body.resourceMetrics ?? []) {
    const resource = keyValues(rm.resource?.attributes)
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const type = m.sum ? "sum" : m.gauge ? "gauge" : m.histogram ? "histogram" : m.summary ? "summary" : undefined
        if (type === undefined) continue
        for (const p of m[type].dataPoints ?? []) {
          into.push({
            metric: m.name,
            description: m.description ?? "",
            unit: m.unit ?? "",
            type,
            monotonic: type === "sum" ? m.sum.isMonotonic === true : undefined,
            attributes: keyValues(p.attributes),
            value: p.asDouble !== undefined ? Number(p.asDouble) : optionalNumber(p.asInt),
            count: optionalNumber(p.count),
            sum: optionalNumber(p.sum),
            bucketCounts: p.bucketCounts?.map(Number),
            explicitBounds: p.explicitBounds?.map(Number),
            timeNs: nanos(p.timeUnixNano),
            resource
          })
        }
      }
    }
  }
}

const flattenLogs = (body: Json, into: Array<LogRecord>) => {
  for (const rl of body.resourceLogs ?? []) {
    const resource = keyValues(rl.resource?.attributes)
    for (const sl of rl.scopeLogs ?? []) {
      for (const r of sl.logRecords ?? []) {
        into.push({
          body: anyValue(r.body),
          severityText: r.severityText,
          attributes: keyValues(r.attributes),
          traceId: hexId(r.traceId),
          spanId: hexId(r.spanId),
          timeNs: nanos(r.timeUnixNano),
          resource
        })
      }
    }
  }
}

// ---------------------------------------------------------------------------
// OTLP/protobuf into the OTLP/JSON shape (field numbers from
// opentelemetry-proto: collector/*/v1, trace/v1, metrics/v1, logs/v1, common/v1)
// ---------------------------------------------------------------------------

type FieldType = "string" | "bytes" | "varint" | "bool" | "fixed64" | "fixed32" | "double" | "message"
interface Field {
  readonly name: string
  readonly type: FieldType
  readonly repeated?: boolean
  readonly message?: string
}
const f = (name: string, type: FieldType, extra: { repeated?: boolean; message?: string } = {}): Field => ({
  name,
  type,
  ...extra
})
const msg = (name: string, message: string, repeated = false) => f(name, "message", { message, repeated })

const schema: Record<string, Record<number, Field>> = {
  AnyValue: {
    1: f("stringValue", "string"),
    2: f("boolValue", "bool"),
    3: f("intValue", "varint"),
    4: f("doubleValue", "double"),
    5: msg("arrayValue", "ArrayValue"),
    6: msg("kvlistValue", "KeyValueList"),
    7: f("bytesValue", "bytes")
  },
  ArrayValue: { 1: msg("values", "AnyValue", true) },
  KeyValueList: { 1: msg("values", "KeyValue", true) },
  KeyValue: { 1: f("key", "string"), 2: msg("value", "AnyValue") },
  Resource: { 1: msg("attributes", "KeyValue", true) },
  Scope: { 1: f("name", "string"), 2: f("version", "string"), 3: msg("attributes", "KeyValue", true) },
  // traces
  TracesData: { 1: msg("resourceSpans", "ResourceSpans", true) },
  ResourceSpans: { 1: msg("resource", "Resource"), 2: msg("scopeSpans", "ScopeSpans", true) },
  ScopeSpans: { 1: msg("scope", "Scope"), 2: msg("spans", "Span", true) },
  Span: {
    1: f("traceId", "bytes"),
    2: f("spanId", "bytes"),
    4: f("parentSpanId", "bytes"),
    5: f("name", "string"),
    6: f("kind", "varint"),
    7: f("startTimeUnixNano", "fixed64"),
    8: f("endTimeUnixNano", "fixed64"),
    9: msg("attributes", "KeyValue", true),
    11: msg("events", "Event", true),
    15: msg("status", "Status")
  },
  Event: { 1: f("timeUnixNano", "fixed64"), 2: f("name", "string"), 3: msg("attributes", "KeyValue", true) },
  Status: { 2: f("message", "string"), 3: f("code", "varint") },
  // metrics
  MetricsData: { 1: msg("resourceMetrics", "ResourceMetrics", true) },
  ResourceMetrics: { 1: msg("resource", "Resource"), 2: msg("scopeMetrics", "ScopeMetrics", true) },
  ScopeMetrics: { 1: msg("scope", "Scope"), 2: msg("metrics", "Metric", true) },
  Metric: {
    1: f("name", "string"),
    2: f("description", "string"),
    3: f("unit", "string"),
    5: msg("gauge", "Gauge"),
    7: msg("sum", "Sum"),
    9: msg("histogram", "Histogram"),
    11: msg("summary", "Summary")
  },
  Gauge: { 1: msg("dataPoints", "NumberDataPoint", true) },
  Sum: {
    1: msg("dataPoints", "NumberDataPoint", true),
    2: f("aggregationTemporality", "varint"),
    3: f("isMonotonic", "bool")
  },
  Histogram: { 1: msg("dataPoints", "HistogramDataPoint", true), 2: f("aggregationTemporality", "varint") },
  Summary: { 1: msg("dataPoints", "SummaryDataPoint", true) },
  NumberDataPoint: {
    2: f("startTimeUnixNano", "fixed64"),
    3: f("timeUnixNano", "fixed64"),
    4: f("asDouble", "double"),
    6: f("asInt", "fixed64"),
    7: msg("attributes", "KeyValue", true)
  },
  HistogramDataPoint: {
    2: f("startTimeUnixNano", "fixed64"),
    3: f("timeUnixNano", "fixed64"),
    4: f("count", "fixed64"),
    5: f("sum", "double"),
    6: f("bucketCounts", "fixed64", { repeated: true }),
    7: f("explicitBounds", "double", { repeated: true }),
    9: msg("attributes", "KeyValue", true),
    11: f("min", "double"),
    12: f("max", "double")
  },
  SummaryDataPoint: {
    2: f("startTimeUnixNano", "fixed64"),
    3: f("timeUnixNano", "fixed64"),
    4: f("count", "fixed64"),
    5: f("sum", "double"),
    7: msg("attributes", "KeyValue", true)
  },
  // logs
  LogsData: { 1: msg("resourceLogs", "ResourceLogs", true) },
  ResourceLogs: { 1: msg("resource", "Resource"), 2: msg("scopeLogs", "ScopeLogs", true) },
  ScopeLogs: { 1: msg("scope", "Scope"), 2: msg("logRecords", "LogRecord", true) },
  LogRecord: {
    1: f("timeUnixNano", "fixed64"),
    2: f("severityNumber", "varint"),
    3: f("severityText", "string"),
    5: msg("body", "AnyValue"),
    6: msg("attributes", "KeyValue", true),
    9: f("traceId", "bytes"),
    10: f("spanId", "bytes"),
    11: f("observedTimeUnixNano", "fixed64")
  }
}

class Reader {
  pos = 0
  constructor(readonly buf: Buffer, readonly end = buf.length) {}
  varint(): bigint {
    let result = 0n
    let shift = 0n
    for (;;) {
      if (this.pos >= this.end) throw new Error("truncated varint")
      const byte = this.buf[this.pos++]!
      result |= BigInt(byte & 0x7f) << shift
      if ((byte & 0x80) === 0) return result
      shift += 7n
    }
  }
  take(n: number): Buffer {
    if (this.pos + n > this.end) throw new Error("truncated field")
    const out = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }
}

const scalar = (type: FieldType, wire: number, r: Reader): unknown => {
  switch (type) {
    case "varint":
      return Number(BigInt.asIntN(64, r.varint()))
    case "bool":
      return r.varint() !== 0n
    case "fixed64":
      return r.take(8).readBigUInt64LE().toString()
    case "fixed32":
      return r.take(4).readUInt32LE()
    case "double":
      return r.take(8).readDoubleLE()
    default:
      throw new Error(`unexpected scalar ${type} (wire type ${wire})`)
  }
}

const skip = (wire: number, r: Reader) => {
  if (wire === 0) r.varint()
  else if (wire === 1) r.take(8)
  else if (wire === 2) r.take(Number(r.varint()))
  else if (wire === 5) r.take(4)
  else throw new Error(`unsupported wire type ${wire}`)
}

const decodeMessage = (type: string, buf: Buffer): Json => {
  const fields = schema[type]!
  const out: Json = {}
  const r = new Reader(buf)
  while (r.pos < r.end) {
    const key = Number(r.varint())
    const number = key >>> 3
    const wire = key & 7
    const field = fields[number]
    if (field === undefined) {
      skip(wire, r)
      continue
    }
    const add = (value: unknown) => {
      if (field.repeated) (out[field.name] ??= []).push(value)
      else out[field.name] = value
    }
    if (field.type === "message") add(decodeMessage(field.message!, r.take(Number(r.varint()))))
    else if (field.type === "string") add(r.take(Number(r.varint())).toString("utf8"))
    else if (field.type === "bytes") add(r.take(Number(r.varint())).toString("hex"))
    else if (wire === 2) {
      // a packed repeated scalar
      const inner = new Reader(r.take(Number(r.varint())))
      while (inner.pos < inner.end) add(scalar(field.type, wire, inner))
    } else add(scalar(field.type, wire, r))
  }
  return out
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

const signals = {
  "/v1/traces": { proto: "TracesData" },
  "/v1/metrics": { proto: "MetricsData" },
  "/v1/logs": { proto: "LogsData" }
} as const

/** A URL on 127.0.0.1 where nothing listens (a port just freed). */
export const unreachableUrl = async (): Promise<string> => {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return `http://127.0.0.1:${port}`
}

export const start = async (options: { readonly mode?: "ok" | "hang" } = {}): Promise<Receiver> => {
  const spans: Array<Span> = []
  const dataPoints: Array<DataPoint> = []
  const logs: Array<LogRecord> = []
  const requests: Array<Request> = []
  const errors: Array<string> = []
  const waiters = new Set<() => void>()
  const hung = new Set<http.ServerResponse>()

  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      const path = (req.url ?? "").split("?")[0]!
      const contentType = String(req.headers["content-type"] ?? "").split(";")[0]!.trim()
      const encoding = req.headers["content-encoding"]
      requests.push({ path, contentType, encoding, at: performance.now() })
      if (options.mode === "hang") {
        hung.add(res)
        return
      }
      const signal = signals[path as keyof typeof signals]
      if (req.method !== "POST" || signal === undefined) {
        res.writeHead(404).end()
        return
      }
      try {
        let body = Buffer.concat(chunks)
        if (encoding === "gzip") body = zlib.gunzipSync(body)
        const data = contentType === "application/x-protobuf"
          ? decodeMessage(signal.proto, body)
          : JSON.parse(body.toString("utf8"))
        if (path === "/v1/traces") flattenTraces(data, spans)
        else if (path === "/v1/metrics") flattenMetrics(data, dataPoints)
        else flattenLogs(data, logs)
      } catch (e) {
        errors.push(`${path} (${contentType}): ${e instanceof Error ? e.message : String(e)}`)
        res.writeHead(400).end()
        return
      }
      // An empty Export*ServiceResponse: "{}" in JSON, zero bytes in protobuf.
      if (contentType === "application/x-protobuf") {
        res.writeHead(200, { "content-type": "application/x-protobuf", "content-length": "0" }).end()
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      }
      for (const wake of waiters) wake()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo

  const waitFor = (ready: () => boolean, timeoutMs = 15_000) =>
    new Promise<void>((resolve, reject) => {
      if (ready()) return resolve()
      const wake = () => {
        if (!ready()) return
        waiters.delete(wake)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        waiters.delete(wake)
        reject(new Error(`OTLP receiver: not there after ${timeoutMs} ms (${spans.length} spans, ${dataPoints.length} data points, ${logs.length} logs)`))
      }, timeoutMs)
      waiters.add(wake)
    })

  const close = () =>
    new Promise<void>((resolve) => {
      for (const res of hung) res.destroy()
      server.close(() => resolve())
      server.closeAllConnections()
    })

  return { port, url: `http://127.0.0.1:${port}`, spans, dataPoints, logs, requests, errors, waitFor, close }
}

/** The latest data point of `metric` whose attributes include `attributes`. */
export const latest = (
  receiver: Pick<Receiver, "dataPoints">,
  metric: string,
  attributes: Attributes = {}
): DataPoint | undefined => {
  let found: DataPoint | undefined
  for (const p of receiver.dataPoints) {
    if (p.metric !== metric) continue
    if (!Object.entries(attributes).every(([k, v]) => p.attributes[k] === v)) continue
    if (found === undefined || p.timeNs >= found.timeNs) found = p
  }
  return found
}
