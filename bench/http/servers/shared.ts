/**
 * What every bench server answers, so the servers differ only in how they
 * shut down: `GET /` answers `ok` at once (throughput), `GET /work?ms=500`
 * answers after the given time (requests in flight at the signal). Each server
 * prints `ready <port>` once it listens on 127.0.0.1 (port 0: the kernel picks).
 */
import { Effect } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import type * as http from "node:http"
import type * as net from "node:net"

export const host = "127.0.0.1"

/** Generous grace everywhere, so no timeout cuts a request: what is measured is how soon each server knows it is done. */
export const graceMs = 10_000

const workMs = (url: string): number => Math.min(5_000, Math.max(0, Number(new URL(url, "http://x").searchParams.get("ms") ?? 500)))

/** The effect router of the winddown and bare-effect servers. */
export const Routes = HttpRouter.addAll([
  HttpRouter.route("GET", "/", Effect.succeed(HttpServerResponse.text("ok"))),
  HttpRouter.route(
    "GET",
    "/work",
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const ms = workMs(request.url)
      yield* Effect.sleep(ms)
      return HttpServerResponse.text(`worked ${ms} ms`)
    })
  )
])

/** The same two routes as a plain node:http handler (http-terminator, terminus). */
export const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  const url = req.url ?? "/"
  // setHeader + end (not writeHead) so Node sends Content-Length, like effect does, not chunked
  res.setHeader("content-type", "text/plain")
  if (url === "/") {
    res.end("ok")
  } else if (url.startsWith("/work")) {
    const ms = workMs(url)
    setTimeout(() => res.end(`worked ${ms} ms`), ms)
  } else {
    res.writeHead(404).end()
  }
}

/** Print `ready <port>` when `server` listens. */
export const announce = <S extends net.Server>(server: S): S =>
  server.once("listening", () => {
    process.stdout.write(`ready ${(server.address() as net.AddressInfo).port}\n`)
  })
