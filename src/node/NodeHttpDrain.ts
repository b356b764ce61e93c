/**
 * HTTP drain for the Shutdown phases: effect's `NodeHttpServer` (routers) or
 * any existing Node server (Express, Fastify's `server`, Koa, http2) stops
 * well during a rolling deploy.
 *
 * From the first signal every HTTP/1.1 response carries `Connection: close`
 * and HTTP/2 sessions get GOAWAY; in `stopAccepting` the listener closes and
 * idle keep-alive sockets are closed once idle for a short grace (so a request
 * the client just sent on them is served, not reset); in `drain` requests in
 * flight finish within the allowance, then their fibers are interrupted (503)
 * and the remaining sockets destroyed.
 *
 * @since 0.1.0
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Deferred, Effect, Exit, Layer, Metric, Scope } from "effect"
import type { HttpServerError } from "effect/http"
import * as http from "node:http"
import type * as net from "node:net"
import type * as stream from "node:stream"
import * as Deadline from "../internal/deadline.ts"
import { formatMillis, type Input as DurationInput } from "../internal/duration.ts"
import { holdScope } from "../internal/hold.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Log from "../internal/log.ts"
import * as Trace from "../internal/trace.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as ShutdownMetrics from "../ShutdownMetrics.ts"
import * as HttpDrain from "./internal/HttpDrain.ts"

/**
 * Options of the drain.
 *
 * @since 0.1.0
 * @category models
 */
export interface DrainOptions {
  /**
   * A keep-alive socket idle for this long is closed as soon as the listener
   * closes; one used more recently gets the rest of this grace, and a request
   * arriving in it is served with `Connection: close`.
   */
  readonly idleGrace?: DurationInput | undefined
  /** Send `Connection: close` on every HTTP/1.1 response from the first signal on. */
  readonly connectionClose?: boolean | undefined
  /** The most the HTTP drain may take; the drain phase's allowance always applies. */
  readonly drainTimeout?: DurationInput | undefined
  /** Called for each upgraded connection (WebSocket) when closing starts: end it gracefully (close code 1001). */
  readonly onUpgraded?: ((socket: stream.Duplex, request: http.IncomingMessage) => void) | undefined
  /** The name of the steps and report section. */
  readonly name?: string | undefined
}

/**
 * The defaults, from the engine's own.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  idleGrace: `${HttpDrain.defaults.idleGraceMs} millis`,
  connectionClose: HttpDrain.defaults.connectionClose,
  drainTimeout: "the drain phase allowance",
  name: "http"
} as const

/**
 * A server under drain.
 *
 * @since 0.1.0
 * @category models
 */
export interface Drained {
  readonly server: HttpDrain.DrainableServer
  readonly stats: () => HttpDrain.HttpDrainStats
  /** Completes once the drain step ended (drained, cut, or forced). */
  readonly awaitDrained: Effect.Effect<void>
}

/**
 * Put an existing Node server under the Shutdown: `Connection: close` from
 * the first signal, listener closed in `stopAccepting`, requests drained in
 * `drain`, leftover sockets destroyed at the end of the drain. Call it before
 * the server starts listening, so every connection is tracked.
 *
 * The drain step's deadline is the Shutdown's (its `drainTimeout`, the drain
 * phase's allowance, the hard deadline): when it passes, `onDrained` runs
 * (the effect server uses it to interrupt its request fibers) and leftover
 * sockets are destroyed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const adopt = (
  server: HttpDrain.DrainableServer,
  options: DrainOptions = {},
  onDrained: Effect.Effect<void> = Effect.void
): Effect.Effect<Drained, ShutdownConfigError, Shutdown.Shutdown> =>
  Effect.gen(function*() {
    const shutdown = yield* Shutdown.Shutdown
    const settings = yield* OptionCheck.check(options, (c) => {
      if (options.onUpgraded !== undefined) c.func("onUpgraded", options.onUpgraded)
      return {
        name: c.name("name", options.name ?? defaults.name),
        idleGraceMs: c.duration("idleGrace", options.idleGrace ?? defaults.idleGrace, { zero: true })!,
        drainTimeoutMs: c.duration("drainTimeout", options.drainTimeout),
        connectionClose: c.boolean("connectionClose", options.connectionClose) ?? defaults.connectionClose
      }
    })
    const name = settings.name
    const engine = HttpDrain.adopt(server, {
      idleGraceMs: settings.idleGraceMs,
      connectionClose: settings.connectionClose,
      ...(options.onUpgraded ? { onUpgradedClose: options.onUpgraded } : {})
    })
    let destroyed = 0
    let drained: boolean | undefined
    const ended = Deferred.makeUnsafe<void>()

    // Everything lives in the Shutdown's phases, not in the caller's scope:
    // the program's own scope closes at the first signal, long before the
    // drain. With a pre-stop delay, Connection: close starts at the signal so
    // clients move to another replica while this one still answers. Without
    // one it starts with the listener close, in the same tick: clients told to
    // reconnect a few ms before the listener closes would land in the kernel's
    // accept queue, and closing the listener resets those connections.
    if (shutdown.budget.phasesMs.preStop > 0) {
      yield* shutdown.addStep(`${name}: connection close`, Effect.sync(() => engine.beginClosing()), {
        phase: "readiness"
      })
    }
    yield* shutdown.addStep(`${name}: close listener`, Effect.promise(() => engine.stopAccepting()), {
      phase: "stopAccepting"
    })
    const drainRequests = Effect.gen(function*() {
      const step = yield* Deadline.CurrentStep
      const left = step === undefined ? Infinity : Deadline.currentDeadline(step) - (yield* Effect.clockWith((c) => c.currentTimeMillis))
      const before = engine.stats()
      yield* Log.info(
        `[winddown] ${name}: draining ${before.activeRequests} requests on ${before.connections} connections, up to ${
          formatMillis(left)
        }`,
        {
          "winddown.phase": "drain",
          "winddown.http.server": name,
          "winddown.http.active_requests": before.activeRequests,
          "winddown.http.connections": before.connections,
          ...(left === Infinity ? {} : { "winddown.remaining_ms": Math.round(left) })
        }
      )
      // Bounded by the step's deadline: the runner interrupts this wait then.
      drained = yield* Effect.promise(() => engine.drain()).pipe(
        Effect.onInterrupt(() =>
          Effect.suspend(() => {
            const after = engine.stats()
            return Log.warn(
              `[winddown] ${name}: ${after.activeRequests} requests on ${after.connections} connections still running at the deadline: interrupted and their sockets destroyed`,
              {
                "winddown.phase": "drain",
                "winddown.http.server": name,
                "winddown.http.active_requests": after.activeRequests,
                "winddown.http.connections": after.connections
              }
            )
          })
        )
      )
    })
    const attributes = { "winddown.http.server": name }
    const finish = onDrained.pipe(
      Effect.andThen(Effect.sync(() => {
        destroyed += engine.destroyAll()
        engine.dispose()
        Deferred.doneUnsafe(ended, Exit.void)
      })),
      Effect.andThen(Effect.suspend(() => {
        const stats = engine.stats()
        return Effect.all([
          Trace.annotate(() => ({
            ...attributes,
            "winddown.http.connections": stats.connections,
            "winddown.http.active_requests": stats.activeRequests,
            "winddown.http.served_while_closing": stats.servedWhileClosing,
            "winddown.http.idle_closed": stats.endedIdle,
            "winddown.http.destroyed": destroyed,
            "winddown.http.drained": drained ?? false
          })),
          Metric.update(ShutdownMetrics.series("winddown.http.served_while_closing", attributes), stats.servedWhileClosing),
          Metric.update(ShutdownMetrics.series("winddown.http.connections_destroyed", attributes), destroyed)
        ], { discard: true })
      }))
    )
    yield* shutdown.addStep(`${name}: drain requests`, Effect.ensuring(drainRequests, finish), {
      phase: "drain",
      ...(settings.drainTimeoutMs === undefined ? {} : { timeout: settings.drainTimeoutMs })
    })
    yield* shutdown.addSection(name, () => ({ ...engine.stats(), drained: drained ?? false, destroyed }))
    yield* shutdown.addProgress(name, () => {
      const { activeRequests, connections, upgraded } = engine.stats()
      if (connections === 0 && activeRequests === 0) return undefined
      return `${activeRequests} requests on ${connections} connections${upgraded > 0 ? ` (${upgraded} upgraded)` : ""}`
    }, () => engine.stats().activeRequests)
    return { server, stats: engine.stats, awaitDrained: Deferred.await(ended) }
  })

/**
 * The server {@link layer} started: where it listens (with `port: 0`, the
 * port it got) and its drain counts.
 *
 * @since 0.1.0
 * @category services
 */
export class Server extends Context.Service<
  Server,
  Drained & {
    readonly port: number | undefined
    readonly address: net.AddressInfo | string | undefined
  }
>()("winddown/node/NodeHttpDrain/Server") {}

/**
 * Listen options of {@link layer}: `NodeHttpServer`'s own (port, host ...)
 * plus the drain's.
 *
 * @since 0.1.0
 * @category models
 */
export interface LayerOptions extends DrainOptions {
  readonly port?: number | undefined
  readonly host?: string | undefined
  /** Create the server (e.g. `https.createServer(tls)`, `http2.createServer()`). Default `http.createServer()`. */
  readonly createServer?: (() => HttpDrain.DrainableServer) | undefined
}

/**
 * Serve an effect HTTP app under the Shutdown: builds `serve` (e.g.
 * `HttpRouter.serve(routes)`) on a `NodeHttpServer` whose lifetime the
 * Shutdown owns, so the listener closes in `stopAccepting` and requests keep
 * being handled until the drain ends, even though the program's fiber is
 * interrupted at the first signal.
 *
 * ```ts
 * const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(routes), { port: 3000 })
 * NodeRuntime.runMain(Layer.launch(HttpLive).pipe(Effect.provide(NodeShutdown.layer())))
 * ```
 *
 * It provides {@link Server}: the bound port (useful with `port: 0`) and the
 * drain counts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E, R>(
  serve: Layer.Layer<never, E, R>,
  options: LayerOptions = {}
): Layer.Layer<
  Server,
  E | ShutdownConfigError | HttpServerError.ServeError,
  Exclude<R, Layer.Success<ReturnType<typeof NodeHttpServer.layer>>> | Shutdown.Shutdown
> =>
  Layer.effect(
    Server,
    Effect.gen(function*() {
      const server = (options.createServer ?? (() => http.createServer()))()
      // The Shutdown owns the server's scope: closing it (which interrupts the
      // request fibers still running) is the end of the drain step.
      const serverScope = yield* Scope.make()
      const drained = yield* adopt(server, options, Scope.close(serverScope, Exit.void))
      const shutdown = yield* Shutdown.Shutdown
      // During a shutdown, this layer's scope stays open until the requests
      // drained: whatever the routes were given (a pool provided to this layer)
      // is released after them.
      yield* holdScope(shutdown, drained.awaitDrained, Effect.void)
      const nodeServer = NodeHttpServer.layer(() => server, {
        port: options.port ?? 0,
        ...(options.host === undefined ? {} : { host: options.host }),
        disablePreemptiveShutdown: true
      })
      yield* Layer.buildWithScope(Layer.provide(serve, nodeServer), serverScope)
      const address = server.address()
      return {
        ...drained,
        port: typeof address === "object" && address !== null ? address.port : undefined,
        address: address ?? undefined
      }
    })
  )
