/**
 * 04 HTTP drain with an effect router: `GET /work?ms=2000` answers after the
 * given time. Start a slow request, press Ctrl+C: the request finishes (with
 * `Connection: close`), new connections are refused, and the process exits
 * right after the last response.
 *
 *   node --import tsx examples/04_http_drain.ts
 *   curl -i 'localhost:3000/work?ms=3000' & sleep 0.5; kill -TERM <pid>
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { NodeHttpDrain, NodeShutdown } from "winddown/node"

const Routes = HttpRouter.add(
  "GET",
  "/work",
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const ms = Number(new URL(request.url, "http://x").searchParams.get("ms") ?? 100)
    yield* Effect.sleep(ms)
    return HttpServerResponse.text(`worked ${ms} ms\n`)
  })
)

const port = Number(process.env.PORT ?? 3000)
const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(Routes, { disableLogger: true }), { port })

const main = Effect.gen(function*() {
  const server = yield* NodeHttpDrain.Server // with PORT=0: the port it got
  yield* Effect.log(
    `listening on http://localhost:${server.port}; pid ${process.pid}; stop with Ctrl+C or kill -TERM ${process.pid}`
  )
  return yield* Effect.never
})

NodeRuntime.runMain(
  main.pipe(Effect.provide(HttpLive), Effect.provide(NodeShutdown.layer({ timeout: "15 seconds" })))
)
