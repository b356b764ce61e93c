/**
 * Health probes that know about the shutdown: liveness, readiness and startup,
 * each with named checks, served as JSON on `/livez`, `/readyz` and
 * `/startupz`.
 *
 * - readiness is `starting` (503) until {@link Service.markStarted}, and
 *   `shuttingDown` (503) from the first instant of the shutdown: it reads the
 *   Shutdown's flag, not its phase, so it flips at the signal itself;
 * - liveness stays `ok` (200) during the whole shutdown, so an orchestrator
 *   never restarts a process that is only winding down; only a failing
 *   liveness check makes it 503;
 * - startup is `starting` until `markStarted`, then reflects its checks.
 *
 * A check passes when its effect succeeds (and does not return `false`)
 * within its timeout. The checks of one probe run concurrently, each in its
 * own fiber, so a hung check (even an uninterruptible one) costs its timeout,
 * never more. By default the HTTP answer says nothing but the status
 * (`detail: "none"`); `detail: "checks"` adds each check's status, duration
 * and, for failing ones, the error message (never a stack trace).
 *
 * {@link routes} mounts the endpoints on an effect `HttpRouter`; {@link respond}
 * gives the same answers to plain Node code (`NodeHealth` in `winddown/node`).
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Effect, Exit, Fiber, Layer, Option } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { Input as DurationInput } from "./internal/duration.ts"
import * as OptionCheck from "./internal/options.ts"
import * as Shutdown from "./Shutdown.ts"
import { ShutdownConfigError } from "./ShutdownConfig.ts"

/**
 * The three probes.
 *
 * @since 0.1.0
 * @category models
 */
export type Probe = "liveness" | "readiness" | "startup"

/**
 * The probes, in the order Kubernetes uses them (startup gates the others).
 *
 * @since 0.1.0
 * @category models
 */
export const probes: ReadonlyArray<Probe> = ["startup", "liveness", "readiness"]

/**
 * How much a probe answer tells: only the status (`none`), or every check's
 * status, duration and error message (`checks`).
 *
 * @since 0.1.0
 * @category models
 */
export type Detail = "none" | "checks"

/**
 * The paths of the probe endpoints.
 *
 * @since 0.1.0
 * @category models
 */
export interface Paths {
  readonly liveness: `/${string}`
  readonly readiness: `/${string}`
  readonly startup: `/${string}`
}

/**
 * Defaults of {@link Options}, {@link CheckOptions} and the endpoint paths, in
 * one place.
 *
 * - `detail: "none"`: probe answers carry no internals unless asked for.
 * - `checkTimeout`: a check that takes longer is `timedOut`; Kubernetes'
 *   default probe timeout is 1 s too, so a slower answer would be lost anyway.
 * - `startedImmediately: false`: readiness waits for `markStarted`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  detail: "none",
  checkTimeout: "1 second",
  startedImmediately: false,
  probe: "readiness",
  paths: { liveness: "/livez", readiness: "/readyz", startup: "/startupz" }
} as const

/**
 * Options of {@link make} and {@link layer}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** What the HTTP answers include. Default `none`. */
  readonly detail?: Detail | undefined
  /** Timeout of checks registered without one. Default 1 second. */
  readonly checkTimeout?: DurationInput | undefined
  /** Consider startup complete at once (no `markStarted` needed). Default false. */
  readonly startedImmediately?: boolean | undefined
}

/**
 * Options of {@link Service.addCheck}.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckOptions {
  /** The most the check may take. Default: the layer's `checkTimeout` (1 second). */
  readonly timeout?: DurationInput | undefined
  /** The probe the check belongs to. Default `readiness`. */
  readonly probe?: Probe | undefined
}

/**
 * How one check ended.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckStatus = "ok" | "failing" | "timedOut"

/**
 * The outcome of one check. `error` is the failure's message, only for
 * `failing` checks.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckResult {
  readonly status: CheckStatus
  readonly durationMs: number
  readonly error?: string
}

/**
 * What a probe answers.
 *
 * @since 0.1.0
 * @category models
 */
export type ProbeStatus = "ok" | "starting" | "shuttingDown" | "failing"

/**
 * The answer of a probe. `checks` is present when the probe ran its checks
 * (not when it answered `starting` or `shuttingDown` without running them).
 *
 * @since 0.1.0
 * @category models
 */
export interface ProbeResult {
  readonly status: ProbeStatus
  readonly httpStatus: 200 | 503
  readonly checks?: Readonly<Record<string, CheckResult>>
}

/**
 * A framework-free HTTP answer: status code, headers and a JSON body.
 *
 * @since 0.1.0
 * @category models
 */
export interface Response {
  readonly status: 200 | 503
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * Options of {@link routes} and {@link Service.respond}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RespondOptions {
  /** Paths of the endpoints; default `/livez`, `/readyz`, `/startupz`. */
  readonly paths?: Partial<Paths> | undefined
  /** Overrides the layer's `detail` for these endpoints. */
  readonly detail?: Detail | undefined
}

/**
 * A second check with the same name on the same probe. (A bad option is a
 * `ShutdownConfigError`, as in every module.)
 *
 * @since 0.1.0
 * @category errors
 */
export class HealthError extends Data.TaggedError("HealthError")<{
  readonly reason: "DuplicateCheck"
  readonly message: string
}> {}

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** The `detail` the layer was built with. */
  readonly detail: Detail
  /** Startup is complete: readiness may answer `ok`, startup answers `ok`. Idempotent. */
  readonly markStarted: Effect.Effect<void>
  readonly markStartedUnsafe: () => void
  readonly isStartedUnsafe: () => boolean
  /**
   * Register a named check (default probe: readiness). It runs on every
   * probe request, with the context of the caller of `addCheck`.
   */
  readonly addCheck: <E, R>(
    name: string,
    check: Effect.Effect<unknown, E, R>,
    options?: CheckOptions
  ) => Effect.Effect<void, HealthError | ShutdownConfigError, R>
  readonly probe: (probe: Probe) => Effect.Effect<ProbeResult>
  readonly liveness: Effect.Effect<ProbeResult>
  readonly readiness: Effect.Effect<ProbeResult>
  readonly startup: Effect.Effect<ProbeResult>
  /**
   * The HTTP answer for a request path (query string ignored), or none when
   * the path is not a probe endpoint.
   */
  readonly respond: (path: string, options?: RespondOptions) => Effect.Effect<Option.Option<Response>>
}

/**
 * The Health service tag.
 *
 * @since 0.1.0
 * @category services
 */
export class Health extends Context.Service<Health, Service>()("winddown/Health") {}

const details: ReadonlyArray<Detail> = ["none", "checks"]

/**
 * The endpoint paths with defaults filled in, or the error naming a bad one
 * (each must start with `/`, hold no `?` or `#`, and differ from the others).
 * Throws the {@link HealthError}; for plain Node code.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolvePathsUnsafe = (paths: Partial<Paths> = {}): Paths => {
  const resolved = OptionCheck.checkSync(paths, (c) => {
    const resolved = { ...defaults.paths, ...stripUndefined(paths) }
    for (const probe of probes) {
      const path: unknown = resolved[probe]
      if (typeof path !== "string" || !path.startsWith("/") || /[?#\s]/.test(path)) {
        c.refuse(`paths.${probe}`, path, `a path starting with "/", without "?", "#" or spaces`)
      }
    }
    if (new Set(probes.map((p) => resolved[p])).size !== probes.length) c.refuse("paths", resolved, "three different paths")
    return resolved
  })
  if (resolved instanceof ShutdownConfigError) throw resolved
  return resolved
}

/**
 * {@link resolvePathsUnsafe} as an Effect failing with the {@link HealthError}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolvePaths = (paths?: Partial<Paths>): Effect.Effect<Paths, ShutdownConfigError> =>
  Effect.try({ try: () => resolvePathsUnsafe(paths), catch: (e) => e as ShutdownConfigError })

const stripUndefined = <A extends object>(a: A): Partial<A> =>
  Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) as Partial<A>

/**
 * The probe a request path (or URL path with a query string) asks for.
 *
 * @since 0.1.0
 * @category combinators
 */
export const matchPath = (url: string, paths: Paths): Probe | undefined => {
  const end = url.search(/[?#]/)
  const path = end === -1 ? url : url.slice(0, end)
  return probes.find((probe) => paths[probe] === path)
}

const maxErrorLength = 200

/** The first line of a failure's message, bounded: never a stack trace. */
const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const squashed = Cause.squash(cause)
  const text = squashed instanceof Error
    ? squashed.message || squashed.name
    : typeof squashed === "object" && squashed !== null
    ? String((squashed as { message?: unknown }).message ?? (squashed as { _tag?: unknown })._tag ?? "failed")
    : String(squashed)
  const line = text.split("\n", 1)[0]!.trim() || "failed"
  return line.length > maxErrorLength ? `${line.slice(0, maxErrorLength - 1)}…` : line
}

/**
 * Turn a probe result into the HTTP answer: `{"status":"ok"}` with 200, or
 * 503 with `shuttingDown`, `starting` or `failing`; with `detail: "checks"`,
 * plus `checks: { name: { status, durationMs, error? } }` when the checks ran.
 *
 * @since 0.1.0
 * @category combinators
 */
export const render = (result: ProbeResult, detail: Detail): Response => {
  const body: { status: ProbeStatus; checks?: Record<string, CheckResult> } = { status: result.status }
  if (detail === "checks" && result.checks !== undefined) {
    body.checks = Object.fromEntries(
      Object.entries(result.checks).map(([name, check]) => [
        name,
        check.status === "failing" && check.error !== undefined
          ? { status: check.status, durationMs: check.durationMs, error: check.error }
          : { status: check.status, durationMs: check.durationMs }
      ])
    )
  }
  return {
    status: result.httpStatus,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
    body: JSON.stringify(body)
  }
}

interface Check {
  readonly name: string
  readonly timeoutMs: number
  readonly run: Effect.Effect<unknown, unknown>
}

const answer = (status: ProbeStatus, checks?: Record<string, CheckResult>): ProbeResult => {
  const httpStatus = status === "ok" ? 200 : 503
  return checks === undefined ? { status, httpStatus } : { status, httpStatus, checks }
}

const timedOut = { _tag: "timedOut" } as const

/**
 * Run a check in its own fiber, awaited only until its timeout: a check stuck
 * in an uninterruptible region is left behind (interrupted in the background),
 * so the probe still answers in time.
 */
const runCheck = (check: Check): Effect.Effect<CheckResult> =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const fiber = yield* Effect.forkDetach(Effect.interruptible(check.run))
    const outcome = yield* Effect.raceFirst(
      Fiber.await(fiber),
      Effect.as(Effect.sleep(check.timeoutMs), timedOut)
    ).pipe(Effect.ensuring(Effect.sync(() => fiber.interruptUnsafe())))
    const durationMs = (yield* Clock.currentTimeMillis) - start
    if (!Exit.isExit(outcome)) return { status: "timedOut", durationMs }
    if (Exit.isFailure(outcome)) return { status: "failing", durationMs, error: describeFailure(outcome.cause) }
    if (outcome.value === false) return { status: "failing", durationMs, error: "check returned false" }
    return { status: "ok", durationMs }
  })

const readOptions = (options: Options) =>
  OptionCheck.check(options, (c) => ({
    detail: c.oneOf("detail", options.detail, details) ?? defaults.detail,
    checkTimeoutMs: c.duration("checkTimeout", options.checkTimeout ?? defaults.checkTimeout)!,
    startedImmediately: c.boolean("startedImmediately", options.startedImmediately) ?? defaults.startedImmediately
  }))

/**
 * Build a Health service on the current Shutdown.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, ShutdownConfigError, Shutdown.Shutdown> =>
  Effect.gen(function*() {
    const settings = yield* readOptions(options)
    const shutdown = yield* Shutdown.Shutdown
    let started = settings.startedImmediately
    const checks: Record<Probe, Map<string, Check>> = {
      liveness: new Map(),
      readiness: new Map(),
      startup: new Map()
    }
    const markStartedUnsafe = () => void (started = true)

    const runChecks = (probe: Probe): Effect.Effect<ProbeResult> => {
      const list = [...checks[probe].values()]
      return Effect.map(Effect.forEach(list, runCheck, { concurrency: "unbounded" }), (results) => {
        // The signal may have come while the checks ran: the flag wins.
        if (probe === "readiness" && shutdown.isShuttingDownUnsafe()) return answer("shuttingDown")
        const record: Record<string, CheckResult> = {}
        list.forEach((check, i) => void (record[check.name] = results[i]!))
        return answer(results.every((r) => r.status === "ok") ? "ok" : "failing", record)
      })
    }

    const probe = (probe: Probe): Effect.Effect<ProbeResult> =>
      Effect.suspend(() => {
        if (probe === "readiness" && shutdown.isShuttingDownUnsafe()) return Effect.succeed(answer("shuttingDown"))
        if (probe !== "liveness" && !started) return Effect.succeed(answer("starting"))
        return runChecks(probe)
      })

    const service: Service = {
      detail: settings.detail,
      markStarted: Effect.sync(markStartedUnsafe),
      markStartedUnsafe,
      isStartedUnsafe: () => started,
      addCheck: (name, check, checkOptions = {}) =>
        Effect.contextWith((context: Context.Context<any>): Effect.Effect<void, HealthError | ShutdownConfigError> => {
          const read = OptionCheck.checkSync(checkOptions, (c) => {
            c.name("check name", name)
            return {
              probe: c.oneOf(`probe of check ${JSON.stringify(name)}`, checkOptions.probe ?? defaults.probe, probes)!,
              timeoutMs: c.duration(`timeout of check ${JSON.stringify(name)}`, checkOptions.timeout) ??
                settings.checkTimeoutMs
            }
          })
          if (read instanceof ShutdownConfigError) return Effect.fail(read)
          const { probe, timeoutMs } = read
          if (checks[probe].has(name)) {
            return Effect.fail(
              new HealthError({ reason: "DuplicateCheck", message: `a ${probe} check named "${name}" exists already` })
            )
          }
          checks[probe].set(name, { name, timeoutMs, run: Effect.provideContext(check, context) })
          return Effect.void
        }),
      probe,
      liveness: probe("liveness"),
      readiness: probe("readiness"),
      startup: probe("startup"),
      respond: (path, respondOptions = {}) =>
        Effect.suspend(() => {
          const paths = { ...defaults.paths, ...stripUndefined(respondOptions.paths ?? {}) }
          const matched = matchPath(path, paths)
          if (matched === undefined) return Effect.succeedNone
          const detail = respondOptions.detail ?? settings.detail
          return Effect.map(probe(matched), (result) => Option.some(render(result, detail)))
        })
    }
    return service
  })

/**
 * The Health layer, on the Shutdown of the context. Provide it outside
 * `HttpRouter.serve` so that the routes and your program share one Health.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Health, ShutdownConfigError, Shutdown.Shutdown> =>
  Layer.effect(Health, make(options))

/**
 * The probe endpoints as an effect `HttpRouter` layer, to merge with your own
 * routes: `GET /livez`, `/readyz`, `/startupz` (see {@link RespondOptions}).
 *
 * ```ts
 * const App = Layer.mergeAll(MyRoutes, Health.routes()).pipe(
 *   HttpRouter.serve,
 *   Layer.provide(NodeHttpServer.layer(() => http.createServer(), { port: 3000 })),
 *   Layer.provide(Health.layer())
 * )
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const routes = (
  options: RespondOptions = {}
): Layer.Layer<never, ShutdownConfigError, HttpRouter.HttpRouter | Health> =>
  HttpRouter.use((router) =>
    Effect.gen(function*() {
      const paths = yield* resolvePaths(options.paths)
      const health = yield* Health
      const detail = (yield* OptionCheck.check(options, (c) => c.oneOf("detail", options.detail, details))) ??
        health.detail
      const handler = (probe: Probe) =>
        Effect.map(health.probe(probe), (result) => {
          const { status, headers, body } = render(result, detail)
          return HttpServerResponse.text(body, { status, headers, contentType: headers["content-type"]! })
        })
      yield* router.addAll(probes.map((probe) => HttpRouter.route("GET", paths[probe], handler(probe))))
    })
  )

/**
 * Mark startup complete.
 *
 * @since 0.1.0
 * @category combinators
 */
export const markStarted: Effect.Effect<void, never, Health> = Effect.flatMap(Health, (h) => h.markStarted)

/**
 * Register a named check on the current Health.
 *
 * @since 0.1.0
 * @category combinators
 */
export const addCheck = <E, R>(
  name: string,
  check: Effect.Effect<unknown, E, R>,
  options?: CheckOptions
): Effect.Effect<void, HealthError | ShutdownConfigError, R | Health> => Effect.flatMap(Health, (h) => h.addCheck(name, check, options))

/**
 * The readiness probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const readiness: Effect.Effect<ProbeResult, never, Health> = Effect.flatMap(Health, (h) => h.readiness)

/**
 * The liveness probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const liveness: Effect.Effect<ProbeResult, never, Health> = Effect.flatMap(Health, (h) => h.liveness)

/**
 * The startup probe.
 *
 * @since 0.1.0
 * @category combinators
 */
export const startup: Effect.Effect<ProbeResult, never, Health> = Effect.flatMap(Health, (h) => h.startup)

/**
 * The HTTP answer for a request path, or none when it is not a probe endpoint
 * (see {@link Service.respond}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const respond = (
  path: string,
  options?: RespondOptions
): Effect.Effect<Option.Option<Response>, never, Health> => Effect.flatMap(Health, (h) => h.respond(path, options))
