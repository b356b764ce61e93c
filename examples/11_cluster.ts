/**
 * 11 cluster mode: a `node:cluster` primary runs WORKERS copies of an effect
 * router that share the port, each under its own `NodeShutdown` and
 * `NodeHttpDrain`. The same file is the primary and every worker.
 *
 * `kill -HUP <primary>` replaces the workers one at a time: a new worker
 * starts, and once it is ready an old one drains and exits; keep-alive
 * clients move to the other workers, nothing is dropped (`GET /` answers
 * with the pid of the worker that served it, so you can watch them change).
 * Ctrl+C or `kill -TERM <primary>` stops every worker gracefully inside the
 * primary's 25 s budget, then the primary (exit 0).
 *
 *   PORT=3000 WORKERS=2 node --import tsx examples/11_cluster.ts
 *   curl localhost:3000/; kill -HUP <primary pid>; curl localhost:3000/; kill -TERM <primary pid>
 */
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { NodeCluster, NodeHttpDrain, NodeShutdown } from "winddown/node"

const Routes = HttpRouter.add(
  "GET",
  "/*",
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const ms = Number(new URL(request.url, "http://x").searchParams.get("ms") ?? 0)
    if (ms > 0) yield* Effect.sleep(ms)
    return HttpServerResponse.text(`${process.pid}\n`)
  })
)

const port = Number(process.env.PORT ?? 3000)
const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }), {
  port
})

// Each worker: serve, then tell the primary it is ready. Its own budget is
// below the primary's, so a worker that needs all of it still ends in time.
const worker = Effect.gen(function*() {
  const server = yield* NodeHttpDrain.Server
  yield* NodeCluster.ready
  yield* Effect.log(`worker ${process.pid} ready on http://localhost:${server.port}`)
  return yield* Effect.never
}).pipe(Effect.provide(HttpLive), Effect.provide(NodeShutdown.layer({ timeout: "20 seconds" })))

if (NodeCluster.isPrimary()) {
  console.log(
    `primary ${process.pid}: reload with kill -HUP ${process.pid}; stop with Ctrl+C or kill -TERM ${process.pid}`
  )
}

NodeCluster.runMain(worker, { workers: Number(process.env.WORKERS ?? 2), timeout: "25 seconds" })
