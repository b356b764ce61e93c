/**
 * The demo's HTTP API: accept jobs durably, report their state, simulate
 * request work, and the health probes. It trusts nothing it receives: bodies
 * and query strings are decoded with `Schema` within the limits below, and
 * every refusal is a JSON `{"error": "<one line>"}` (413 for a body over the
 * limit, 400 for a bad value, 404 for an unknown path, 405 with `Allow` for a
 * wrong method, 503 when the store cannot record a job or answer).
 *
 * The API is the same whether the jobs live in the journal or in PostgreSQL.
 */
import { ByteSize, Effect, Layer, Result, Schema, SchemaTransformation } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Health } from "winddown"
import { describeIssue, limits as storeLimits } from "./JobStore.ts"
import type { Jobs } from "./Jobs.ts"

/** The limits, documented in the README's "Operating it". */
export const limits = {
  /** Request bodies (POST /jobs) above this are answered 413. */
  maxBodyBytes: 16 * 1024,
  /** POST /jobs `ms`. */
  maxJobMs: storeLimits.maxJobMs,
  /** GET /work?ms= (request work has to fit in a drain). */
  maxWorkMs: 60_000,
  /** GET /work without `ms`. */
  defaultWorkMs: 100,
  /** Node's own: the request head must arrive within this (else 408 and the socket closes). */
  headersTimeoutMs: 5_000,
  /** Node's own: the whole request, body included, must arrive within this (else 408). */
  requestTimeoutMs: 10_000
} as const

const fail = (status: number, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.jsonUnsafe({ error: message }, { status, ...(headers ? { headers } : {}) })

const JobRequest = Schema.Struct({
  ms: Schema.Int.check(
    Schema.isBetween({ minimum: 0, maximum: limits.maxJobMs }, {
      message: `expected a whole number of milliseconds from 0 to ${limits.maxJobMs}`
    })
  )
})

/** A query value of digits only: `ms=`, `ms=%20`, `ms=0x10`, `ms=1e3`, `ms=-1` are not numbers here. */
const WorkQuery = Schema.Struct({
  ms: Schema.optionalKey(
    Schema.String.check(
      Schema.makeFilter((s: string) =>
        /^[0-9]{1,6}$/.test(s) && Number(s) <= limits.maxWorkMs
          ? undefined
          : `expected a whole number of milliseconds from 0 to ${limits.maxWorkMs}`
      )
    ).pipe(Schema.decodeTo(Schema.Int, SchemaTransformation.numberFromString))
  )
})

const expectedBody = `{"ms": <whole number from 0 to ${limits.maxJobMs}>}`

const tooLarge = () =>
  fail(413, `body larger than ${limits.maxBodyBytes} bytes`, { connection: "close" })

const isBodyTooLarge = (e: unknown) =>
  (e as { reason?: { _tag?: string; reason?: string } } | undefined)?.reason?._tag === "RequestParseError" &&
  (e as { reason: { reason?: string } }).reason.reason === "BodyTooLarge"

/** The body as text, up to the limit; a response when it is refused. */
const readBody = (request: HttpServerRequest.HttpServerRequest) => {
  const declared = request.headers["content-length"]
  if (declared !== undefined && Number(declared) > limits.maxBodyBytes) {
    // Refused before a byte of it is read.
    return Effect.succeed(Result.fail(tooLarge()))
  }
  return request.text.pipe(
    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(BigInt(limits.maxBodyBytes))),
    Effect.map((text) => Result.succeed(text)),
    Effect.catch((e) => Effect.succeed(Result.fail(isBodyTooLarge(e) ? tooLarge() : fail(400, "could not read the body"))))
  )
}

/** The store could not answer: nothing was decided, try again. */
const unavailable = (what: string, message: string) =>
  Effect.as(
    Effect.logWarning(`[demo] ${what} answered 503: ${message}`),
    fail(503, `not available: ${message}`, { "retry-after": "5" })
  )

const postJob = <C>(jobs: Jobs<C>) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const body = yield* readBody(request)
    if (Result.isFailure(body)) return body.failure
    let value: unknown
    try {
      value = JSON.parse(body.success)
    } catch {
      return fail(400, `body is not JSON; expected ${expectedBody}`)
    }
    const decoded = Schema.decodeUnknownResult(JobRequest)(value)
    if (Result.isFailure(decoded)) {
      return fail(400, `body is not ${expectedBody}: ${describeIssue(decoded.failure.issue)}`)
    }
    // On disk before the answer: a 202 is a promise the journal keeps.
    const accepted = yield* Effect.result(jobs.accept(decoded.success.ms))
    if (Result.isFailure(accepted)) {
      yield* Effect.logWarning(`[demo] POST /jobs answered 503: ${accepted.failure.message}`)
      return fail(503, `not accepted: ${accepted.failure.message}`, { "retry-after": "5" })
    }
    return HttpServerResponse.jsonUnsafe({ id: accepted.success.id }, { status: 202 })
  })

const getJob = <C>(jobs: Jobs<C>) =>
  Effect.gen(function*() {
    const { id } = yield* HttpRouter.params
    const found = id === undefined ? Result.succeed(undefined) : yield* Effect.result(jobs.get(id))
    if (Result.isFailure(found)) return yield* unavailable("GET /jobs/:id", found.failure.message)
    const job = found.success
    if (job === undefined) return fail(404, "no such job")
    const { state, ms, progressMs, result, runs, completions, history } = job
    return HttpServerResponse.jsonUnsafe({
      id,
      state,
      ms,
      progressMs,
      result,
      runs,
      completions,
      ...(history === undefined ? {} : { history })
    })
  })

const getCounts = <C>(jobs: Jobs<C>) =>
  Effect.result(jobs.counts).pipe(
    Effect.flatMap((counts) =>
      Result.isFailure(counts)
        ? unavailable("GET /jobs", counts.failure.message)
        : Effect.succeed(HttpServerResponse.jsonUnsafe(counts.success))
    )
  )

const work = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const params = new URL(request.url, "http://demo").searchParams
  const values = params.getAll("ms")
  if (values.length > 1) return fail(400, "ms: given more than once")
  const decoded = Schema.decodeUnknownResult(WorkQuery)(values.length === 0 ? {} : { ms: values[0] })
  if (Result.isFailure(decoded)) return fail(400, describeIssue(decoded.failure.issue))
  const ms = decoded.success.ms ?? limits.defaultWorkMs
  yield* Effect.sleep(ms)
  return HttpServerResponse.jsonUnsafe({ worked: ms })
})

/** Every path and the methods it answers (HEAD goes with GET). */
export const table: ReadonlyArray<{ readonly path: string; readonly methods: ReadonlyArray<string> }> = [
  { path: "/jobs", methods: ["GET", "POST"] },
  { path: "/jobs/:id", methods: ["GET"] },
  { path: "/work", methods: ["GET"] },
  ...Object.values(Health.defaults.paths).map((path) => ({ path, methods: ["GET"] }))
]

const matches = (pattern: string, pathname: string) => {
  const want = pattern.split("/")
  const got = pathname.split("/")
  return want.length === got.length && want.every((w, i) => (w.startsWith(":") ? got[i] !== "" : w === got[i]))
}

/** The methods `pathname` answers, as an `Allow` header value; none: unknown path. */
export const allowed = (pathname: string): string | undefined => {
  const methods = table.filter((r) => matches(r.path, pathname)).flatMap((r) => r.methods)
  if (methods.length === 0) return undefined
  if (methods.includes("GET")) methods.push("HEAD")
  return [...new Set(methods)].sort().join(", ")
}

const isRouteNotFound = (e: unknown) =>
  (e as { reason?: { _tag?: string } } | undefined)?.reason?._tag === "RouteNotFound"

/** What no route answers: 405 with `Allow` for a known path, else 404; both with a JSON body. */
const notRouted = HttpRouter.middleware((app) =>
  Effect.catch(app, (e) =>
    isRouteNotFound(e)
      ? Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
        const pathname = new URL(request.url, "http://demo").pathname
        const allow = allowed(pathname)
        const shown = `${request.method.slice(0, 16)} ${pathname.slice(0, 100)}`
        // A method the path answers, with a value the router refused (an id too long): not found.
        return allow === undefined || allow.split(", ").includes(request.method)
          ? fail(404, `no route for ${shown}`)
          : fail(405, `${shown}: method not allowed (allowed: ${allow})`, { allow })
      })
      : Effect.fail(e)), { global: true })

export const routes = <C>(jobs: Jobs<C>) =>
  Layer.mergeAll(
    HttpRouter.add("POST", "/jobs", postJob(jobs)),
    HttpRouter.add("GET", "/jobs/:id", getJob(jobs)),
    HttpRouter.add("GET", "/jobs", getCounts(jobs)),
    HttpRouter.add("GET", "/work", work),
    Health.routes(),
    notRouted
  )
