/**
 * The demo's HTTP API: accept jobs durably, report their state, simulate
 * request work, and the health probes.
 */
import { Effect, Layer, Queue } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Health } from "winddown"
import type { Jobs } from "./Jobs.ts"

const maxMs = 60_000

const badRequest = (message: string) => HttpServerResponse.jsonUnsafe({ error: message }, { status: 400 })

export const routes = (jobs: Jobs, queue: Queue.Queue<string>) =>
  Layer.mergeAll(
    HttpRouter.add(
      "POST",
      "/jobs",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const body = yield* Effect.orElseSucceed(request.json, () => undefined)
        const ms = (body as { ms?: unknown } | undefined)?.ms
        if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 0 || ms > maxMs) {
          return badRequest(`body must be {"ms": <whole number of milliseconds, 0 to ${maxMs}>}`)
        }
        // On disk before the answer: a 202 is a promise the journal keeps.
        const job = yield* jobs.accept(ms)
        yield* Queue.offer(queue, job.id)
        return HttpServerResponse.jsonUnsafe({ id: job.id }, { status: 202 })
      })
    ),
    HttpRouter.add(
      "GET",
      "/jobs/:id",
      Effect.gen(function*() {
        const { id } = yield* HttpRouter.params
        const job = id === undefined ? undefined : jobs.get(id)
        if (job === undefined) return HttpServerResponse.jsonUnsafe({ error: "no such job" }, { status: 404 })
        const { state, ms, progressMs, result, runs, completions } = job
        return HttpServerResponse.jsonUnsafe({ id, state, ms, progressMs, result, runs, completions })
      })
    ),
    HttpRouter.add(
      "GET",
      "/jobs",
      Effect.sync(() => HttpServerResponse.jsonUnsafe(jobs.counts()))
    ),
    HttpRouter.add(
      "GET",
      "/work",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const ms = Number(new URL(request.url, "http://demo").searchParams.get("ms") ?? 100)
        if (!Number.isInteger(ms) || ms < 0 || ms > maxMs) return badRequest(`ms must be a whole number from 0 to ${maxMs}`)
        yield* Effect.sleep(ms)
        return HttpServerResponse.jsonUnsafe({ worked: ms })
      })
    ),
    Health.routes()
  )
