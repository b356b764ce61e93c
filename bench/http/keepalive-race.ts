/**
 * Keep-alive race at shutdown: plain `server.close()` against HttpDrain.
 *
 * 50 closed-loop keep-alive clients hammer a handler that answers after
 * 20-50 ms; after 500 ms the server shuts down; clients loop until they get
 * ECONNREFUSED. Prints, per mode, failed requests (ECONNRESET / socket hang up)
 * and the time from the shutdown call to "all connections gone", with medians.
 *
 * Modes: `server.close()` alone (Node >= 19 also closes idle sockets once);
 * `close+closeIdle`, the usual fix for keep-alive lingering: `server.close()`
 * then `closeIdleConnections()` every 10 ms until closed; `HttpDrain`.
 * A mode still open after a 10 s budget gets `closeAllConnections()`.
 *
 *   node --import tsx bench/http/keepalive-race.ts [runs=10] [thinkMs=0]
 *
 * thinkMs > 0: each client waits a random 0..thinkMs between requests, so
 * sockets sit idle and the idle-grace rule (not only Connection: close) is hit.
 */
import * as http from "node:http"
import type * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { adopt } from "../../src/node/internal/HttpDrain.ts"

type Mode = "server.close()" | "close+closeIdle" | "HttpDrain"

interface Result {
  /** ECONNRESET / socket hang up before the 10 s budget ran out (the race) */
  readonly failed: number
  /** requests cut when the budget ran out (closeAllConnections / destroyAll) */
  readonly killed: number
  readonly refused: number
  readonly ok: number
  readonly servedWhileClosing: number
  /** shutdown call to every connection closed */
  readonly closeToDrainedMs: number
  /** last response finished (server side) to every connection closed */
  readonly lastResponseToDrainedMs: number
}

const host = "127.0.0.1"
const clients = 50
const thinkMs = Math.max(0, Number(process.argv[3] ?? 0))

const scenario = async (mode: Mode): Promise<Result> => {
  let closingAt = Infinity
  let lastFinish = 0
  let servedWhileClosing = 0
  const server = http.createServer((_req, res) => {
    res.once("finish", () => {
      lastFinish = performance.now()
      if (lastFinish >= closingAt) servedWhileClosing++
    })
    setTimeout(() => res.end("ok"), 20 + Math.random() * 30)
  })
  const drain = mode === "HttpDrain" ? adopt(server) : undefined
  await new Promise<void>((r) => server.listen(0, host, r))
  const port = (server.address() as net.AddressInfo).port
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients })
  let failed = 0
  let killed = 0
  let budgetOver = false
  let refused = 0
  let ok = 0
  const deadline = performance.now() + 15_000
  const one = () =>
    new Promise<"ok" | "refused" | "failed">((resolve) => {
      const req = http.get({ host, port, agent }, (res) => {
        res.resume()
        res.once("end", () => resolve("ok"))
        res.once("error", () => resolve("failed"))
      })
      req.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED" ? "refused" : "failed"))
    })
  const loop = async () => {
    for (let i = 0; i < 5_000 && performance.now() < deadline; i++) {
      const r = await one()
      if (thinkMs > 0) await sleep(Math.random() * thinkMs)
      if (r === "ok") ok++
      else if (r === "failed") {
        if (budgetOver) killed++
        else failed++
      }
      else {
        refused++
        return
      }
    }
  }
  const loops = Array.from({ length: clients }, loop)
  await sleep(500)

  closingAt = performance.now()
  let drainedAt: number
  if (drain !== undefined) {
    drain.beginClosing()
    await drain.stopAccepting()
    const drained = await drain.drain(10_000)
    drainedAt = performance.now()
    if (!drained) {
      budgetOver = true
      drain.destroyAll()
    }
    drain.dispose()
  } else {
    // 'close' fires once every connection is gone; bounded like a real shutdown budget
    let isClosed = false
    const closed = new Promise<void>((r) => server.close(() => r())).then(() => (isClosed = true))
    const sweeper = mode === "close+closeIdle" ? setInterval(() => server.closeIdleConnections(), 10) : undefined
    await Promise.race([closed, sleep(10_000)])
    drainedAt = performance.now()
    clearInterval(sweeper)
    if (!isClosed) {
      budgetOver = true
      server.closeAllConnections()
    }
  }
  await Promise.all(loops)
  agent.destroy()
  if (server.listening) server.close()
  return {
    failed,
    killed,
    refused,
    ok,
    servedWhileClosing,
    closeToDrainedMs: drainedAt - closingAt,
    lastResponseToDrainedMs: drainedAt - lastFinish
  }
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const main = async () => {
  const runs = Math.max(1, Number(process.argv[2] ?? 10))
  const modes: ReadonlyArray<Mode> = ["server.close()", "close+closeIdle", "HttpDrain"]
  const results = new Map<Mode, Array<Result>>(modes.map((m) => [m, []]))
  for (let i = 0; i < runs; i++) {
    // interleave modes so drift on the machine hits both alike
    for (const mode of modes) results.get(mode)!.push(await scenario(mode))
  }
  const pad = (s: string | number, n: number) => String(s).padStart(n)
  const w = 16
  const fmt = (n: number) => n.toFixed(1)
  console.log(`node ${process.version}, ${clients} keep-alive clients, handler 20-50 ms, think 0-${thinkMs} ms, shutdown at 500 ms, ${runs} runs per mode\n`)
  console.log(`${"mode".padEnd(w)} ${pad("run", 4)} ${pad("failed", 7)} ${pad("killed", 7)} ${pad("refused", 8)} ${pad("ok", 6)} ${pad("served-closing", 15)} ${pad("close->drained ms", 18)} ${pad("last-resp->drained ms", 22)}`)
  for (const mode of modes) {
    const rs = results.get(mode)!
    rs.forEach((r, i) =>
      console.log(`${mode.padEnd(w)} ${pad(i + 1, 4)} ${pad(r.failed, 7)} ${pad(r.killed, 7)} ${pad(r.refused, 8)} ${pad(r.ok, 6)} ${pad(r.servedWhileClosing, 15)} ${pad(fmt(r.closeToDrainedMs), 18)} ${pad(fmt(r.lastResponseToDrainedMs), 22)}`)
    )
  }
  console.log(`\nsummary (median over ${runs} runs; failed = ECONNRESET / socket hang up before the budget; killed = cut at the 10 s budget)`)
  console.log(`${"mode".padEnd(w)} ${pad("runs w/ failures", 17)} ${pad("failed total", 13)} ${pad("failed median", 14)} ${pad("killed total", 13)} ${pad("close->drained", 15)} ${pad("last-resp->drained", 19)}`)
  for (const mode of modes) {
    const rs = results.get(mode)!
    console.log(
      `${mode.padEnd(w)} ${pad(`${rs.filter((r) => r.failed > 0).length}/${rs.length}`, 17)} ${pad(rs.reduce((a, r) => a + r.failed, 0), 13)} ${pad(median(rs.map((r) => r.failed)), 14)} ${pad(rs.reduce((a, r) => a + r.killed, 0), 13)} ${pad(fmt(median(rs.map((r) => r.closeToDrainedMs))), 15)} ${pad(fmt(median(rs.map((r) => r.lastResponseToDrainedMs))), 19)}`
    )
  }
}

await main()
