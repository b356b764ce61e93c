/**
 * The server bench/cluster-reload.ts runs under NodeCluster: an effect router
 * like the demo's API (JSON answers, the winddown probes on the same port),
 * each worker under NodeShutdown, NodeHttpDrain and Health, ready through
 * `NodeCluster.markStarted`. `GET /` answers at once, `GET /work?ms=N` after
 * N ms; both with the worker's pid as the body, so the client sees which
 * worker served it.
 *
 *   PORT=3000 WORKERS=2 node --import tsx bench/cluster/server.ts
 */
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Health } from "winddown"
import { NodeCluster, NodeHttpDrain, NodeShutdown } from "winddown/node"

const answer = HttpServerResponse.text(`${process.pid}\n`)

const Api = Layer.mergeAll(
  HttpRouter.add("GET", "/", Effect.succeed(answer)),
  HttpRouter.add(
    "GET",
    "/work",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      yield* Effect.sleep(Number(new URL(request.url, "http://x").searchParams.get("ms") ?? 10))
      return answer
    })
  ),
  Health.routes()
)

const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(Api, { disableLogger: true, disableListenLog: true }), {
  port: Number(process.env.PORT ?? 3000),
  host: "127.0.0.1"
})

const worker = Effect.gen(function*() {
  yield* NodeCluster.markStarted
  return yield* Effect.never
}).pipe(
  Effect.provide(HttpLive),
  Effect.provide(Health.layer()),
  Effect.provide(NodeShutdown.layer({ timeout: "20 seconds", preStop: 0, progressInterval: 0 }))
)

NodeCluster.runMain(worker, {
  workers: Number(process.env.WORKERS ?? 2),
  timeout: "25 seconds",
  progressInterval: 0
})
