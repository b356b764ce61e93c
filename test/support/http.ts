/**
 * A closed-loop keep-alive HTTP client for shutdown tests: N connections that
 * each send the next request as soon as the previous one ends, through the
 * shutdown, until the server refuses connections. Every outcome is recorded.
 */
import * as http from "node:http"
import * as net from "node:net"

export const host = "127.0.0.1"

export interface Outcome {
  readonly sentAt: number
  readonly doneAt: number
  readonly status?: number
  readonly connection?: string
  readonly error?: { readonly code: string | undefined; readonly message: string }
}

export const listen = (server: net.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, host, () => {
      server.off("error", reject)
      resolve((server.address() as net.AddressInfo).port)
    })
  })

export const get = (port: number, agent: http.Agent | false, path = "/"): Promise<Outcome> =>
  new Promise((resolve) => {
    const sentAt = performance.now()
    const fail = (e: NodeJS.ErrnoException) =>
      resolve({ sentAt, doneAt: performance.now(), error: { code: e.code, message: e.message } })
    const req = http.get({ host, port, path, agent }, (res) => {
      res.resume()
      res.once("end", () =>
        resolve({
          sentAt,
          doneAt: performance.now(),
          status: res.statusCode ?? 0,
          connection: String(res.headers.connection ?? "")
        }))
      res.once("error", fail)
    })
    req.once("error", fail)
  })

export const isReset = (o: Outcome) => o.error !== undefined && (o.error.code === "ECONNRESET" || /hang up/.test(o.error.message))

/**
 * Run `connections` closed loops against `port` until each gets ECONNREFUSED,
 * `maxMs` passes, or it sent `maxRequests`. Resolves with every outcome.
 */
export const closedLoop = (
  port: number,
  options: { readonly connections: number; readonly path?: string; readonly maxMs?: number; readonly maxRequests?: number }
) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections })
  const outcomes: Array<Outcome> = []
  const deadline = performance.now() + (options.maxMs ?? 15_000)
  const loop = async () => {
    for (let i = 0; i < (options.maxRequests ?? 5_000) && performance.now() < deadline; i++) {
      const o = await get(port, agent, options.path)
      outcomes.push(o)
      if (o.error?.code === "ECONNREFUSED") return
    }
  }
  const done = Promise.all(Array.from({ length: options.connections }, loop)).then(() => {
    agent.destroy()
    return outcomes
  })
  return { outcomes, done }
}

/** A port on 127.0.0.1 with nothing listening on it (taken, then released): free to listen on. */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** {@link freePort}, named for its use: a server address nothing answers on. */
export const closedPort = freePort
