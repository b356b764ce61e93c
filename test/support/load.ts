/**
 * A closed-loop keep-alive load generator for cluster reloads: `connections`
 * loops, each sending its next request as soon as the previous one ended,
 * through Node's keep-alive `http.Agent`, which honours `Connection: close`
 * (it never sends another request on a socket the server said it closes).
 * autocannon does not: it writes its next request on the same socket right
 * after a `Connection: close` response and, when the server closes it,
 * reconnects without counting that request as an error or a timeout, so a
 * request lost there would not show. Here every request sent is accounted
 * for: answered, or failed with its kind.
 *
 * Every request is recorded: status, latency, which worker answered (the body
 * is the worker's pid), or the error.
 */
import * as http from "node:http"

export interface LoadResult {
  readonly requests: number
  readonly ok: number
  readonly failed: number
  /** Failures by kind: `reset`, `refused`, `timeout`, `status 503`... */
  readonly failures: Readonly<Record<string, number>>
  /** The first few failures, for assertion messages. */
  readonly samples: ReadonlyArray<string>
  readonly p50Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly durationMs: number
  /** Requests answered by each worker pid, in the order pids were first seen. */
  readonly byPid: ReadonlyMap<number, number>
  /** The pids that answered requests sent at or after `since` (performance.now() ms). */
  readonly pidsSince: (since: number) => ReadonlySet<number>
  /** Latency of the answered requests sent between `from` and `to` (performance.now() ms). */
  readonly latencyBetween: (from: number, to: number) => {
    readonly requests: number
    readonly p50Ms: number
    readonly p99Ms: number
    readonly maxMs: number
  }
}

export interface Load {
  /** Requests finished so far. */
  readonly count: () => number
  /** Stop sending, wait for the requests in flight, and summarise. */
  readonly stop: () => Promise<LoadResult>
}

const kindOf = (error: NodeJS.ErrnoException): string =>
  error.code === "ECONNRESET" || /hang up/.test(error.message)
    ? "reset"
    : error.code === "ECONNREFUSED"
    ? "refused"
    : error.code === "ETIMEDOUT" || error.message === "timeout"
    ? "timeout"
    : error.code ?? error.message

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!

export const keepAliveLoad = (
  port: number,
  options: {
    readonly connections: number
    readonly path?: string
    readonly host?: string
    readonly timeoutMs?: number
    /** A new connection for every request (no keep-alive): the most connections handed to workers around a close. */
    readonly newConnections?: boolean
    /**
     * Each loop waits a random 0 to `thinkMs` ms between requests (default 0:
     * a saturating load). Tests use a little, to leave the CPU to the rest of
     * the suite, and so sockets are idle now and then when a listener closes.
     */
    readonly thinkMs?: number
  }
): Load => {
  const host = options.host ?? "127.0.0.1"
  const path = options.path ?? "/"
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections })
  const latencies: Array<number> = []
  const answers: Array<{ readonly at: number; readonly pid: number; readonly ms: number }> = []
  const failures: Record<string, number> = {}
  const samples: Array<string> = []
  let stopped = false
  let requests = 0
  const started = performance.now()

  const fail = (kind: string, detail: string) => {
    failures[kind] = (failures[kind] ?? 0) + 1
    if (samples.length < 10) samples.push(`${kind}: ${detail}`)
  }

  const one = () =>
    new Promise<void>((resolve) => {
      const sentAt = performance.now()
      const req = http.get({ host, port, path, agent: options.newConnections ? false : agent, timeout: options.timeoutMs ?? 10_000 }, (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => (body += chunk))
        res.once("end", () => {
          requests++
          if (res.statusCode === 200) {
            const ms = performance.now() - sentAt
            latencies.push(ms)
            answers.push({ at: sentAt, pid: Number(body.trim()), ms })
          } else {
            fail(`status ${res.statusCode}`, body.slice(0, 80))
          }
          resolve()
        })
        res.once("error", (e) => {
          requests++
          fail(kindOf(e), e.message)
          resolve()
        })
      })
      req.once("timeout", () => req.destroy(new Error("timeout")))
      req.once("error", (e: NodeJS.ErrnoException) => {
        requests++
        fail(kindOf(e), e.message)
        resolve()
      })
    })

  const think = options.thinkMs ?? 0
  const loop = async () => {
    while (!stopped) {
      await one()
      if (think > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * think))
    }
  }
  const loops = Promise.all(Array.from({ length: options.connections }, loop))

  return {
    count: () => requests,
    stop: async () => {
      stopped = true
      await loops
      agent.destroy()
      const sorted = latencies.slice().sort((a, b) => a - b)
      const byPid = new Map<number, number>()
      for (const { pid } of answers) byPid.set(pid, (byPid.get(pid) ?? 0) + 1)
      const failed = Object.values(failures).reduce((a, b) => a + b, 0)
      return {
        requests,
        ok: requests - failed,
        failed,
        failures,
        samples,
        p50Ms: percentile(sorted, 0.5),
        p99Ms: percentile(sorted, 0.99),
        maxMs: sorted.at(-1) ?? 0,
        durationMs: performance.now() - started,
        byPid,
        pidsSince: (since) => new Set(answers.filter((a) => a.at >= since).map((a) => a.pid)),
        latencyBetween: (from, to) => {
          const window = answers.filter((a) => a.at >= from && a.at < to).map((a) => a.ms).sort((a, b) => a - b)
          return {
            requests: window.length,
            p50Ms: percentile(window, 0.5),
            p99Ms: percentile(window, 0.99),
            maxMs: window.at(-1) ?? 0
          }
        }
      }
    }
  }
}
