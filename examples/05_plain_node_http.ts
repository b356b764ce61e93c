/**
 * 05 a plain `node:http` server (no effect router) under the shutdown:
 * `NodeHttpDrain.adopt(server)` drains it, and `NodeHealth.handler(health)`
 * answers `/livez`, `/readyz` and `/startupz` on the same server. Any
 * framework that exposes its Node server (Express's `app.listen()` return
 * value, Fastify's `fastify.server`) is adopted the same way.
 *
 * `GET /work?ms=2000` answers after the given time. On Ctrl+C `/readyz`
 * answers 503 at once while `/livez` stays 200; the server keeps serving for
 * the 2 s pre-stop delay (so a load balancer has time to notice), then closes
 * its listener and lets requests in flight finish.
 *
 *   PORT=3000 node --import tsx examples/05_plain_node_http.ts   (PORT=0: any free port)
 *   curl -i 'localhost:3000/work?ms=4000' & sleep 0.5; kill -TERM <pid>; curl -i localhost:3000/readyz
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as http from "node:http"
import type * as net from "node:net"
import { Health } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"

const app = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const url = new URL(req.url ?? "/", "http://x")
  if (req.method !== "GET" || url.pathname !== "/work") {
    res.writeHead(404).end("not found\n")
    return
  }
  const ms = Number(url.searchParams.get("ms") ?? 100)
  setTimeout(() => res.end(`worked ${ms} ms\n`), ms)
}

const listen = (server: http.Server, port: number) =>
  Effect.callback<number, Error>((resume) => {
    server.once("error", (error) => resume(Effect.fail(error)))
    server.listen(port, () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
  })

const program = Effect.gen(function*() {
  const health = yield* Health.make()
  const probes = NodeHealth.handler(health)
  const server = http.createServer((req, res) => probes(req, res) || app(req, res))
  // Before listen, so that every connection is tracked.
  yield* NodeHttpDrain.adopt(server)
  const port = yield* listen(server, Number(process.env.PORT ?? 3000))
  yield* health.markStarted
  yield* Effect.log(`listening on http://localhost:${port}; pid ${process.pid}; stop with Ctrl+C or kill -TERM ${process.pid}`)
  return yield* Effect.never
})

NodeRuntime.runMain(
  program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "15 seconds", preStop: "2 seconds" })))
)
