/**
 * Health probes for plain Node: a small probe server of its own, on its own
 * port, and a `(req, res) => boolean` handler for Express, Fastify or
 * `node:http` servers. Both give the exact answers of `Health.respond`.
 *
 * The probe server keeps answering during the whole shutdown (readiness 503,
 * liveness 200), whatever happens to the application's own listeners, and
 * closes only in the `flush` phase, the very end. Every answer carries
 * `Connection: close`, so probes never hold a socket open.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import type * as net from "node:net"
import { Context, Data, Effect, Exit, Fiber, Layer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as Health from "../Health.ts"
import type { Input as DurationInput } from "../internal/duration.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as ShutdownMetrics from "../ShutdownMetrics.ts"

/**
 * Defaults of {@link ServerOptions}, in one place.
 *
 * - `host: "0.0.0.0"`: the kubelet probes the pod's IP, so a probe server on
 *   127.0.0.1 would never be reached and the pod never ready. Set `"::"` on
 *   IPv6 clusters, `"127.0.0.1"` for a sidecar on the loopback.
 * - `closeTimeout`: the flush step that closes the server; its sockets are
 *   destroyed at once, so it rarely needs more than a tick.
 * - `metrics: false`: `/metrics` exposes every metric of the program, not
 *   only winddown's, on a port that anything able to probe the pod can
 *   reach, and a program that already serves `/metrics` would be scraped
 *   twice. Turning it on is a decision, so it is off.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  host: "0.0.0.0",
  closeTimeout: "500 millis",
  metrics: false,
  stepName: "probe server"
} as const

/**
 * Options of {@link handler}.
 *
 * @since 0.1.0
 * @category models
 */
export interface HandlerOptions extends Health.RespondOptions {
  /** Send `Connection: close` with every probe answer. Default false (the probe server sets it). */
  readonly connectionClose?: boolean | undefined
}

/**
 * Options of {@link layerServer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerOptions extends Health.RespondOptions {
  /** The port; 0 picks a free one (read it from {@link ProbeServer}). */
  readonly port: number
  /** The interface to listen on. Default `0.0.0.0`. */
  readonly host?: string | undefined
  /** The most the flush step closing the server may take. Default 500 ms. */
  readonly closeTimeout?: DurationInput | undefined
  /**
   * Also answer `GET /metrics` with the program's metrics (winddown's and
   * its own) in Prometheus text format, through effect's `PrometheusMetrics`;
   * winddown's get Prometheus names (`ShutdownMetrics.prometheusName`).
   * Default false.
   */
  readonly metrics?: boolean | undefined
}

/**
 * The running probe server: where it listens.
 *
 * @since 0.1.0
 * @category services
 */
export class ProbeServer extends Context.Service<ProbeServer, {
  readonly port: number
  readonly host: string
}>()("winddown/node/ProbeServer") {}

/**
 * The probe server could not start: `listen` failed (the port is taken, the
 * host does not exist...). One line, naming the address. (A bad option is a
 * `ShutdownConfigError`, as in every module.)
 *
 * @since 0.1.0
 * @category errors
 */
export class ProbeServerError extends Data.TaggedError("ProbeServerError")<{
  readonly reason: "Listen"
  readonly message: string
  readonly cause?: unknown
}> {
  constructor(args: { readonly reason: "Listen"; readonly message: string; readonly cause?: unknown }) {
    super(args)
    this.stack = `${this._tag}: ${this.message}`
  }
}

/** What runs a probe: `Effect.runFork`, or one bound to a captured context. */
type RunFork = <A>(effect: Effect.Effect<A>) => Fiber.Fiber<A>

const jsonHeaders = { "content-type": "application/json", "cache-control": "no-store" }

const write = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  response: Pick<Health.Response, "headers" | "body"> & { readonly status: number },
  connectionClose: boolean
) => {
  if (res.destroyed || res.headersSent) return
  const headers: Record<string, string> = { ...response.headers, "content-length": String(Buffer.byteLength(response.body)) }
  if (connectionClose) headers.connection = "close"
  res.writeHead(response.status, headers)
  res.end(req.method === "HEAD" ? undefined : response.body)
}

const failed = (req: http.IncomingMessage, res: http.ServerResponse, connectionClose: boolean) =>
  write(req, res, {
    status: 503,
    headers: jsonHeaders,
    body: `{"status":"failing"}`
  }, connectionClose)

const makeHandler = (
  health: Health.Service,
  options: HandlerOptions,
  runFork: RunFork
): (req: http.IncomingMessage, res: http.ServerResponse) => boolean => {
  const paths = Health.resolvePathsUnsafe(options.paths)
  const detail = options.detail ?? health.detail
  const connectionClose = options.connectionClose ?? false
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false
    const probe = Health.matchPath(req.url ?? "/", paths)
    if (probe === undefined) return false
    const fiber = runFork(health.probe(probe))
    // An aborted request stops its checks.
    const onClose = () => {
      if (!res.writableFinished) fiber.interruptUnsafe()
    }
    res.once("close", onClose)
    fiber.addObserver((exit) => {
      res.off("close", onClose)
      if (Exit.isSuccess(exit)) write(req, res, Health.render(exit.value, detail), connectionClose)
      else failed(req, res, connectionClose)
    })
    return true
  }
}

/**
 * A plain Node request handler answering `GET`/`HEAD` on the probe paths; it
 * returns false (and does nothing) for any other request, so it fits in front
 * of any framework:
 *
 * ```ts
 * const probes = NodeHealth.handler(health)
 * http.createServer((req, res) => probes(req, res) || app(req, res))
 * expressApp.use((req, res, next) => probes(req, res) || next())
 * fastify.addHook("onRequest", (req, reply, done) => probes(req.raw, reply.raw) ? reply.hijack() : done())
 * ```
 *
 * Throws a `ShutdownConfigError` at once for bad `paths`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const handler = (
  health: Health.Service,
  options: HandlerOptions = {}
): (req: http.IncomingMessage, res: http.ServerResponse) => boolean =>
  makeHandler(health, options, (effect) => Effect.runFork(effect))


const metricsPath = "/metrics"

/**
 * `GET /metrics`: the metrics of `context`'s registry in Prometheus text
 * format, read at each scrape, so a scrape during the shutdown sees the
 * phases and steps recorded so far.
 */
const prometheus = (context: Context.Context<never>) => (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
  if (req.method !== "GET" && req.method !== "HEAD") return false
  if ((req.url ?? "/").split("?")[0] !== metricsPath) return false
  let body: string
  try {
    body = PrometheusMetrics.formatUnsafe(context, { metricNameMapper: ShutdownMetrics.prometheusNameMapper })
  } catch {
    write(req, res, { status: 500, headers: { "content-type": "text/plain" }, body: "metrics unavailable\n" }, true)
    return true
  }
  write(req, res, {
    status: 200,
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" },
    body
  }, true)
  return true
}

const listen = (server: http.Server, port: number, host: string) =>
  Effect.callback<void, ProbeServerError>((resume) => {
    const onError = (cause: Error) =>
      resume(Effect.fail(
        new ProbeServerError({ reason: "Listen", message: `probe server cannot listen on ${host}:${port}: ${cause.message}`, cause })
      ))
    server.once("error", onError)
    server.listen(port, host, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

const close = (server: http.Server, sockets: Set<net.Socket>) =>
  Effect.callback<void>((resume) => {
    server.close(() => resume(Effect.void))
    for (const socket of sockets) socket.destroy()
    server.closeAllConnections()
  })

/**
 * A probe server of its own (plain `node:http`) answering the three probe
 * paths with the Health of the context (and, with `metrics: true`,
 * `/metrics` for Prometheus), 404 for anything else, and `Connection: close`
 * on every answer.
 *
 * It is not closed with the layer's scope (the program's, which ends at the
 * first instant of the shutdown) but by a step of the `flush` phase (named
 * `probe server`), so it answers through the whole shutdown: readiness 503,
 * liveness 200.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerServer = (
  options: ServerOptions
): Layer.Layer<ProbeServer, ProbeServerError | ShutdownConfigError, Health.Health | Shutdown.Shutdown> =>
  Layer.effect(
    ProbeServer,
    Effect.gen(function*() {
      const { port, host, closeTimeoutMs, metrics } = yield* OptionCheck.check(options, (c) => {
        c.oneOf("detail", options.detail, ["none", "checks"])
        return {
          port: c.integer("port", options.port, 0, 65535) ?? c.refuse("port", undefined, "a port from 0 to 65535"),
          host: c.name("host", options.host ?? defaults.host),
          closeTimeoutMs: c.duration("closeTimeout", options.closeTimeout ?? defaults.closeTimeout)!,
          metrics: c.boolean("metrics", options.metrics) ?? defaults.metrics
        }
      })
      yield* Health.resolvePaths(options.paths)
      const health = yield* Health.Health
      const shutdown = yield* Shutdown.Shutdown
      const context = yield* Effect.context<never>()
      const probes = makeHandler(health, { ...options, connectionClose: true }, Effect.runForkWith(context))
      const scrape = metrics ? prometheus(context) : undefined
      const server = http.createServer((req, res) => {
        if (probes(req, res)) return
        if (scrape !== undefined && scrape(req, res)) return
        write(req, res, { status: 404, headers: jsonHeaders, body: `{"status":"notFound"}` }, true)
      })
      const sockets = new Set<net.Socket>()
      server.on("connection", (socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      })
      // Listening and registering the close go together: a listening server
      // always has its step.
      yield* Effect.uninterruptible(Effect.andThen(
        listen(server, port, host),
        shutdown.addStep(defaults.stepName, close(server, sockets), { phase: "flush", timeout: closeTimeoutMs })
      ))
      const address = server.address() as net.AddressInfo
      return { port: address.port, host: address.address }
    })
  )
