/**
 * Side-by-side HTTP bench of winddown against effect alone, http-terminator
 * and terminus, every server a child process (`node --import tsx`) under
 * bench/http/servers/ that prints `ready <port>`:
 *
 * 1. throughput: requests per second through the same effect router with
 *    winddown's drain (NodeHttpDrain.layer + NodeShutdown.layer) and without
 *    it (NodeHttpServer.layer + runMain), autocannon in this process, rounds
 *    alternating the order (ABBA), fresh processes every two rounds, medians
 *    and their ratio;
 * 2. idle: SIGTERM to process exit with 1,000 idle keep-alive sockets open;
 * 3. busy: SIGTERM to exit (and last response to exit) with 100 keep-alive
 *    sockets each carrying a 500 ms request that is 250 ms old at the signal,
 *    plus failed requests (ECONNRESET / socket hang up) per server.
 *
 * Prints tables (Markdown), writes bench/out/http.svg and bench/out/http.json.
 *
 *   npm run bench:http -- [rounds=10] [duration=3] [connections=50] [runs=5] [only=throughput|shutdown]
 *
 * Besides req/s, each throughput round reads the server's CPU time from
 * /proc (Linux; n/a elsewhere) and reports CPU µs per request: on a shared
 * machine wall-clock req/s moves with whatever else runs, CPU per request much
 * less.
 *
 * Every loop is bounded in count and time; only 127.0.0.1 is used.
 */
import autocannon from "autocannon"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")
const outDir = path.join(root, "bench/out")
const host = "127.0.0.1"

// ---- arguments ---------------------------------------------------------------

const args = new Map(process.argv.slice(2).map((a) => a.split("=", 2) as [string, string]))
const intArg = (name: string, dflt: number, min: number, max: number): number => {
  const v = Number(args.get(name) ?? dflt)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer in ${min}..${max}, got ${args.get(name)}`)
  return v
}
const rounds = intArg("rounds", 10, 1, 50)
const duration = intArg("duration", 3, 1, 60)
const connections = intArg("connections", 50, 1, 1_000)
const roundsPerProcess = 2
const runs = intArg("runs", 5, 1, 50)
const only = args.get("only") ?? "all"
const idleSockets = intArg("idle", 1_000, 1, 5_000)
const busySockets = intArg("busy", 100, 1, 1_000)
const workMs = 500
/** Age of the in-flight requests when SIGTERM arrives. */
const signalAfterMs = 250
/** Idle sockets sit this long after their response before SIGTERM (well under Node's 5 s keepAliveTimeout). */
const idleSettleMs = 500
/** A server that has not exited this long after SIGTERM is killed and counted as timed out. */
const exitBudgetMs = 25_000

// ---- servers -----------------------------------------------------------------

const servers = {
  winddown: "winddown.ts",
  effect: "effect.ts",
  "http-terminator": "http-terminator.ts",
  terminus: "terminus.ts"
} as const
type ServerName = keyof typeof servers
const shutdownServers: ReadonlyArray<ServerName> = ["winddown", "effect", "http-terminator", "terminus"]
const describeServer: Record<ServerName, string> = {
  winddown: "effect router, NodeHttpDrain.layer + NodeShutdown.layer + runMain",
  effect: "effect router, NodeHttpServer.layer + runMain (no winddown)",
  "http-terminator": "node:http + http-terminator, SIGTERM handler, exit 0",
  terminus: "node:http + @godaddy/terminus (stoppable), exit 0"
}

interface Exited {
  readonly at: number
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

interface Running {
  readonly name: ServerName
  readonly child: ChildProcess
  readonly port: number
  readonly exited: Promise<Exited>
  readonly output: () => string
}

const start = (name: ServerName): Promise<Running> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "servers", servers[name])], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    const keep = (chunk: Buffer) => {
      out = (out + chunk.toString()).slice(-4_000)
    }
    const exited = new Promise<Exited>((r) =>
      child.once("exit", (code, signal) => r({ at: performance.now(), code, signal }))
    )
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${name}: no "ready <port>" within 20 s:\n${out}`))
    }, 20_000)
    child.stderr!.on("data", keep)
    child.stdout!.on("data", (chunk: Buffer) => {
      keep(chunk)
      const m = /^ready (\d+)$/m.exec(out)
      if (m !== null && timer.hasRef()) {
        clearTimeout(timer)
        timer.unref()
        resolve({ name, child, port: Number(m[1]), exited, output: () => out })
      }
    })
    void exited.then((e) => {
      if (!timer.hasRef()) return
      clearTimeout(timer)
      reject(new Error(`${name}: exited (${e.code ?? e.signal}) before ready:\n${out}`))
    })
  })

/** Send SIGTERM and wait for 'exit', bounded: SIGKILL after the budget. */
const terminate = async (server: Running): Promise<{ readonly signalAt: number; readonly exit: Exited; readonly timedOut: boolean }> => {
  const signalAt = performance.now()
  server.child.kill("SIGTERM")
  const budget = sleep(exitBudgetMs).then(() => undefined)
  const first = await Promise.race([server.exited, budget])
  if (first !== undefined) return { signalAt, exit: first, timedOut: false }
  server.child.kill("SIGKILL")
  return { signalAt, exit: await server.exited, timedOut: true }
}

const stop = async (server: Running) => {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  server.child.kill("SIGKILL")
  await server.exited
}

const codeOf = (e: Exited) => (e.code !== null ? String(e.code) : String(e.signal))

// ---- statistics ----------------------------------------------------------------

const median = (xs: ReadonlyArray<number>): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const min = (xs: ReadonlyArray<number>) => Math.min(...xs.filter(Number.isFinite))
const max = (xs: ReadonlyArray<number>) => Math.max(...xs.filter(Number.isFinite))
const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
const ms = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : "n/a")

// ---- 1. throughput ----------------------------------------------------------------

interface Round {
  readonly server: ServerName
  readonly round: number
  readonly rps: number
  /** server CPU time (user + sys) per request, µs */
  readonly cpuUsPerRequest: number
  readonly p50: number
  readonly p99: number
  readonly errors: number
  readonly non2xx: number
}

/** CPU time (user + sys) of a process in ms, from /proc/<pid>/stat; NaN where there is none. */
const cpuMs = (pid: number | undefined): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    // utime and stime, in clock ticks of 10 ms (CLK_TCK 100 on Linux)
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return NaN
  }
}

const cannon = async (server: Running, seconds: number): Promise<Omit<Round, "server" | "round">> => {
  const cpu0 = cpuMs(server.child.pid)
  const r = await autocannon({ url: `http://${host}:${server.port}/`, connections, duration: seconds, pipelining: 1 })
  const cpu = cpuMs(server.child.pid) - cpu0
  return {
    rps: r.requests.average,
    cpuUsPerRequest: (cpu * 1_000) / r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx
  }
}

const throughput = async (): Promise<ReadonlyArray<Round>> => {
  const names: ReadonlyArray<ServerName> = ["winddown", "effect"]
  const results: Array<Round> = []
  // A fresh pair of processes every `roundsPerProcess` rounds: now and then one
  // process settles in a state about twice as slow for its whole life (seen
  // once in ~8 effect processes here), which a single pair would pass off as
  // the server's speed. Medians over several processes absorb it.
  for (let first = 1; first <= rounds; first += roundsPerProcess) {
    const running = await Promise.all(names.map(start))
    try {
      for (const s of running) await cannon(s, 2) // warm-up, not recorded
      for (let round = first; round < first + roundsPerProcess && round <= rounds; round++) {
        // ABBA: each server goes first in every other round, so drift hits both alike
        const order = round % 2 === 1 ? running : [...running].reverse()
        for (const s of order) {
          const r = await cannon(s, duration)
          results.push({ server: s.name, round, ...r })
          process.stderr.write(`throughput round ${round}/${rounds} ${s.name} (pid ${s.child.pid}): ${r.rps.toFixed(0)} req/s, ${r.cpuUsPerRequest.toFixed(2)} µs CPU/request\n`)
          await sleep(200)
        }
      }
    } finally {
      await Promise.all(running.map(stop))
    }
  }
  return results
}

// ---- 2. SIGTERM with idle keep-alive sockets ----------------------------------

interface IdleRun {
  readonly server: ServerName
  readonly run: number
  /** sockets open (and idle) when the signal was sent */
  readonly openAtSignal: number
  readonly signalToExitMs: number
  /** signal to the last client socket closing (by the server's FIN/RST, or at its exit) */
  readonly signalToAllClosedMs: number
  /** client sockets that ended with an error (RST) instead of a FIN */
  readonly resets: number
  readonly exitCode: string
  readonly timedOut: boolean
}

/** One raw keep-alive socket with one answered `GET /`, left open. */
const openIdle = (port: number, onClose: (reset: boolean) => void): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host, port })
    let head = ""
    let reset = false
    const timer = setTimeout(() => reject(new Error("idle socket: no response in 5 s")), 5_000)
    socket.setNoDelay(true)
    socket.once("connect", () => socket.write(`GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: keep-alive\r\n\r\n`))
    socket.on("error", () => {
      reset = true
    })
    socket.once("close", () => {
      clearTimeout(timer)
      onClose(reset)
      reject(new Error("idle socket closed before its response"))
    })
    socket.on("data", (chunk: Buffer) => {
      if (head.length > 4_096) return
      head += chunk.toString("latin1")
      // the body is "ok" (Content-Length, or chunked and its last chunk)
      if (head.includes("\r\n\r\n") && (head.endsWith("ok") || head.endsWith("0\r\n\r\n"))) {
        clearTimeout(timer)
        if (!head.startsWith("HTTP/1.1 200")) reject(new Error(`idle socket: unexpected response ${head.slice(0, 40)}`))
        else resolve(socket)
      }
    })
  })

const idleRun = async (name: ServerName, run: number): Promise<IdleRun> => {
  const server = await start(name)
  const sockets: Array<net.Socket> = []
  let open = 0
  let resets = 0
  let lastCloseAt = 0
  try {
    // batches of 100: 1,000 simultaneous connects would overflow the listen backlog (511)
    for (let i = 0; i < idleSockets; i += 100) {
      const batch = Array.from({ length: Math.min(100, idleSockets - i) }, () => {
        open++
        return openIdle(server.port, (reset) => {
          open--
          if (reset) resets++
          lastCloseAt = performance.now()
        })
      })
      sockets.push(...(await Promise.all(batch)))
    }
    await sleep(idleSettleMs)
    const openAtSignal = open
    const t = await terminate(server)
    // sockets the server left open are closed by the kernel at its exit
    for (let i = 0; i < 200 && open > 0; i++) await sleep(10)
    return {
      server: name,
      run,
      openAtSignal,
      signalToExitMs: t.exit.at - t.signalAt,
      signalToAllClosedMs: open > 0 ? NaN : lastCloseAt - t.signalAt,
      resets,
      exitCode: codeOf(t.exit),
      timedOut: t.timedOut
    }
  } finally {
    for (const s of sockets) s.destroy()
    await stop(server)
  }
}

/** The floor: SIGTERM to exit with no connection at all (runtime teardown and process exit). */
const emptyRun = async (name: ServerName): Promise<number> => {
  const server = await start(name)
  try {
    await sleep(idleSettleMs)
    const t = await terminate(server)
    return t.exit.at - t.signalAt
  } finally {
    await stop(server)
  }
}

// ---- 3. SIGTERM with busy keep-alive sockets -------------------------------------

interface BusyRun {
  readonly server: ServerName
  readonly run: number
  readonly signalToExitMs: number
  /** signal to the last successful response (client side) */
  readonly signalToLastResponseMs: number
  readonly lastResponseToExitMs: number
  readonly ok: number
  /** ECONNRESET / socket hang up */
  readonly failed: number
  /** any other error or non-200 status (503 when a server interrupts) */
  readonly other: number
  /** responses that carried Connection: close */
  readonly connectionClose: number
  readonly exitCode: string
  readonly timedOut: boolean
}

type Outcome =
  | { readonly _tag: "ok"; readonly at: number; readonly connectionClose: boolean }
  | { readonly _tag: "failed" | "other"; readonly at: number; readonly detail: string }

const work = (port: number, agent: http.Agent): Promise<Outcome> =>
  new Promise((resolve) => {
    const fail = (e: NodeJS.ErrnoException) =>
      resolve({
        _tag: e.code === "ECONNRESET" || /hang up/.test(e.message) ? "failed" : "other",
        at: performance.now(),
        detail: e.code ?? e.message
      })
    const req = http.get({ host, port, path: `/work?ms=${workMs}`, agent, timeout: 20_000 }, (res) => {
      res.resume()
      res.once("error", fail)
      res.once("end", () =>
        resolve(
          res.statusCode === 200
            ? { _tag: "ok", at: performance.now(), connectionClose: res.headers.connection === "close" }
            : { _tag: "other", at: performance.now(), detail: `status ${res.statusCode}` }
        ))
    })
    req.once("timeout", () => req.destroy(new Error("client timeout")))
    req.once("error", fail)
  })

const busyRun = async (name: ServerName, run: number): Promise<BusyRun> => {
  const server = await start(name)
  const agent = new http.Agent({ keepAlive: true, maxSockets: busySockets })
  try {
    const outcomes = Promise.all(Array.from({ length: busySockets }, () => work(server.port, agent)))
    await sleep(signalAfterMs)
    const t = await terminate(server)
    const all = await Promise.race([outcomes, sleep(5_000).then(() => [] as Array<Outcome>)])
    const oks = all.filter((o) => o._tag === "ok")
    const last = oks.length === 0 ? NaN : max(oks.map((o) => o.at))
    const others = all.filter((o) => o._tag === "other")
    if (others.length > 0) process.stderr.write(`busy ${name}: ${others.map((o) => "detail" in o ? o.detail : "").slice(0, 3).join(", ")}\n`)
    return {
      server: name,
      run,
      signalToExitMs: t.exit.at - t.signalAt,
      signalToLastResponseMs: last - t.signalAt,
      lastResponseToExitMs: t.exit.at - last,
      ok: oks.length,
      failed: all.filter((o) => o._tag === "failed").length,
      other: others.length + (busySockets - all.length),
      connectionClose: oks.filter((o) => o._tag === "ok" && o.connectionClose).length,
      exitCode: codeOf(t.exit),
      timedOut: t.timedOut
    }
  } finally {
    agent.destroy()
    await stop(server)
  }
}

// ---- tables -----------------------------------------------------------------------

const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  return [line(header), `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`, ...rows.map(line)].join("\n")
}

const range = (xs: ReadonlyArray<number>) => `${ms(median(xs))} (${ms(min(xs))}–${ms(max(xs))})`
const codes = (xs: ReadonlyArray<string>) => [...new Set(xs)].join(",")

// ---- chart (plain SVG, no dependencies) ---------------------------------------

interface Bar {
  readonly label: string
  readonly median: number
  readonly lo: number
  readonly hi: number
  readonly text: string
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** Round tick values (1, 2 or 5 times a power of ten) up to `vmax`. */
const niceTicks = (vmax: number): ReadonlyArray<number> => {
  const raw = vmax / 5
  const pow = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw
  return Array.from({ length: Math.floor(vmax / step) }, (_, i) => step * (i + 1))
}

const tickLabel = (t: number) => (t >= 1_000 ? `${Number((t / 1_000).toFixed(1))}k` : String(Number(t.toFixed(1))))

const panel = (y0: number, title: string, bars: ReadonlyArray<Bar>, log: boolean, goal?: { value: number; label: string }) => {
  const x0 = 150
  const width = 560
  const rowH = 26
  const top = y0 + 28
  const vmax = max(bars.flatMap((b) => [b.hi, b.median, goal?.value ?? 0])) * 1.1
  const vmin = 1
  const scale = (v: number) =>
    log
      ? (Math.log10(Math.max(vmin, v)) / Math.log10(Math.max(vmax, 10))) * width
      : (v / vmax) * width
  const parts: Array<string> = [`<text x="10" y="${y0 + 16}" font-weight="bold">${esc(title)}</text>`]
  const ticks = log
    ? Array.from({ length: Math.ceil(Math.log10(vmax)) + 1 }, (_, i) => 10 ** i)
      .flatMap((t) => (vmax < 1_000 ? [t, 2 * t, 5 * t] : [t]))
      .filter((t) => t <= vmax)
    : niceTicks(vmax)
  for (const t of ticks) {
    const x = x0 + scale(t)
    parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${top + bars.length * rowH}" stroke="#ddd"/>`)
    parts.push(`<text x="${x}" y="${top + bars.length * rowH + 12}" font-size="10" text-anchor="middle" fill="#666">${tickLabel(t)}</text>`)
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH
    const color = b.label === "winddown" ? "#2b7bb9" : "#9aa5b1"
    parts.push(`<text x="${x0 - 8}" y="${y + 15}" text-anchor="end">${esc(b.label)}</text>`)
    parts.push(`<rect x="${x0}" y="${y + 3}" width="${Math.max(1, scale(b.median))}" height="${rowH - 8}" fill="${color}"/>`)
    const lo = x0 + scale(b.lo)
    const hi = x0 + scale(b.hi)
    parts.push(`<line x1="${lo}" y1="${y + 12}" x2="${hi}" y2="${y + 12}" stroke="#333"/>`)
    parts.push(`<line x1="${lo}" y1="${y + 7}" x2="${lo}" y2="${y + 17}" stroke="#333"/><line x1="${hi}" y1="${y + 7}" x2="${hi}" y2="${y + 17}" stroke="#333"/>`)
    parts.push(`<text x="${Math.max(hi, x0 + scale(b.median)) + 6}" y="${y + 15}" font-size="11">${esc(b.text)}</text>`)
  })
  if (goal !== undefined) {
    const x = x0 + scale(goal.value)
    parts.push(`<line x1="${x}" y1="${top - 6}" x2="${x}" y2="${top + bars.length * rowH}" stroke="#c0392b" stroke-dasharray="4 3"/>`)
    parts.push(`<text x="${x + 3}" y="${top + bars.length * rowH + 24}" font-size="10" fill="#c0392b">${esc(goal.label)}</text>`)
  }
  return { svg: parts.join("\n"), height: 28 + bars.length * rowH + 36 }
}

const chart = (panels: ReadonlyArray<{ title: string; bars: ReadonlyArray<Bar>; log: boolean; goal?: { value: number; label: string } }>, caption: string) => {
  let y = 30
  const parts: Array<string> = []
  for (const p of panels) {
    const { svg, height } = panel(y, p.title, p.bars, p.log, p.goal)
    parts.push(svg)
    y += height + 10
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${y + 10}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="11" fill="#666">${esc(caption)}</text>
${parts.join("\n")}
</svg>
`
}

// ---- main ----------------------------------------------------------------------------

const main = async () => {
  const machine = `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "cpu"}, ${os.platform()} ${os.release()}`
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(" ")
  console.log(`# winddown HTTP bench\n\n${machine}; load average at start ${load()}\n`)
  for (const n of shutdownServers) console.log(`- ${n}: ${describeServer[n]}`)
  console.log("")

  let tp: ReadonlyArray<Round> = []
  const idle: Array<IdleRun> = []
  const empty: Array<{ readonly server: ServerName; readonly run: number; readonly signalToExitMs: number }> = []
  const busy: Array<BusyRun> = []

  if (only === "all" || only === "throughput") {
    tp = await throughput()
    const by = (n: ServerName) => tp.filter((r) => r.server === n)
    const rpsW = median(by("winddown").map((r) => r.rps))
    const rpsE = median(by("effect").map((r) => r.rps))
    const pairRatios = Array.from({ length: rounds }, (_, i) => {
      const w = tp.find((r) => r.server === "winddown" && r.round === i + 1)
      const e = tp.find((r) => r.server === "effect" && r.round === i + 1)
      return w !== undefined && e !== undefined ? w.rps / e.rps : NaN
    })
    console.log(`## Throughput: GET / (\`ok\`), autocannon ${connections} connections × ${duration} s, ${rounds} rounds alternating (ABBA), a fresh pair of processes every ${roundsPerProcess} rounds after a 2 s warm-up each\n`)
    console.log(table(
      ["server", "req/s median (min–max)", "server CPU µs/request", "p50 ms", "p99 ms", "errors", "non-2xx"],
      (["winddown", "effect"] as const).map((n) => [
        n,
        range(by(n).map((r) => r.rps)),
        `${median(by(n).map((r) => r.cpuUsPerRequest)).toFixed(2)} (${min(by(n).map((r) => r.cpuUsPerRequest)).toFixed(2)}–${max(by(n).map((r) => r.cpuUsPerRequest)).toFixed(2)})`,
        ms(median(by(n).map((r) => r.p50))),
        ms(median(by(n).map((r) => r.p99))),
        String(sum(by(n).map((r) => r.errors))),
        String(sum(by(n).map((r) => r.non2xx)))
      ])
    ))
    const cpuW = median(by("winddown").map((r) => r.cpuUsPerRequest))
    const cpuE = median(by("effect").map((r) => r.cpuUsPerRequest))
    console.log(`\nreq/s ratio winddown / effect: ${(rpsW / rpsE).toFixed(3)} of the medians; per-round ratios: median ${median(pairRatios).toFixed(3)} (${pairRatios.map((r) => r.toFixed(3)).join(" ")}); goal ≥ 0.98`)
    console.log(`CPU per request: winddown ${cpuW.toFixed(2)} µs, effect ${cpuE.toFixed(2)} µs, effect / winddown ${(cpuE / cpuW).toFixed(3)} (the throughput ratio one core would give)\n`)
  }

  if (only === "all" || only === "shutdown") {
    for (let run = 1; run <= runs; run++) {
      // rotate the order so no server always runs first after a slow one
      const order = shutdownServers.map((_, i) => shutdownServers[(i + run) % shutdownServers.length]!)
      for (const n of order) {
        const r = await emptyRun(n)
        empty.push({ server: n, run, signalToExitMs: r })
        process.stderr.write(`empty run ${run}/${runs} ${n}: ${ms(r)} ms\n`)
      }
      for (const n of order) {
        const r = await idleRun(n, run)
        idle.push(r)
        process.stderr.write(`idle run ${run}/${runs} ${n}: ${ms(r.signalToExitMs)} ms, exit ${r.exitCode}\n`)
      }
      for (const n of order) {
        const r = await busyRun(n, run)
        busy.push(r)
        process.stderr.write(`busy run ${run}/${runs} ${n}: ${ms(r.signalToExitMs)} ms, last response→exit ${ms(r.lastResponseToExitMs)} ms, failed ${r.failed}, exit ${r.exitCode}\n`)
      }
    }
    const idleOf = (n: ServerName) => idle.filter((r) => r.server === n)
    const busyOf = (n: ServerName) => busy.filter((r) => r.server === n)
    console.log(`## SIGTERM with ${idleSockets} idle keep-alive sockets (each answered once, idle ${idleSettleMs} ms), ${runs} runs, ms: median (min–max)\n`)
    console.log(table(
      ["server", "SIGTERM→exit", "SIGTERM→sockets closed", "no sockets: SIGTERM→exit", "open at signal", "RST", "exit code", "timed out"],
      shutdownServers.map((n) => [
        n,
        range(idleOf(n).map((r) => r.signalToExitMs)),
        range(idleOf(n).map((r) => r.signalToAllClosedMs)),
        range(empty.filter((r) => r.server === n).map((r) => r.signalToExitMs)),
        ms(median(idleOf(n).map((r) => r.openAtSignal))),
        String(sum(idleOf(n).map((r) => r.resets))),
        codes(idleOf(n).map((r) => r.exitCode)),
        String(idleOf(n).filter((r) => r.timedOut).length)
      ])
    ))
    console.log(`\n## SIGTERM with ${busySockets} busy keep-alive sockets (${workMs} ms requests, ${signalAfterMs} ms old at the signal), ${runs} runs, ms: median (min–max)\n`)
    console.log(table(
      ["server", "SIGTERM→exit", "SIGTERM→last response", "last response→exit", "ok", "failed", "other", "Connection: close", "exit code"],
      shutdownServers.map((n) => [
        n,
        range(busyOf(n).map((r) => r.signalToExitMs)),
        range(busyOf(n).map((r) => r.signalToLastResponseMs)),
        range(busyOf(n).map((r) => r.lastResponseToExitMs)),
        String(sum(busyOf(n).map((r) => r.ok))),
        String(sum(busyOf(n).map((r) => r.failed))),
        String(sum(busyOf(n).map((r) => r.other))),
        String(sum(busyOf(n).map((r) => r.connectionClose))),
        codes(busyOf(n).map((r) => r.exitCode))
      ])
    ))
    console.log(`\nok / failed / other / Connection: close are totals over ${runs} runs × ${busySockets} requests; failed = ECONNRESET or socket hang up.`)
  }

  console.log(`\nload average at the end: ${load()} (above ${os.cpus().length}: something else was running)`)
  mkdirSync(outDir, { recursive: true })
  writeFileSync(
    path.join(outDir, "http.json"),
    JSON.stringify({ machine, settings: { rounds, duration, connections, runs, idleSockets, busySockets, workMs, signalAfterMs, idleSettleMs }, throughput: tp, empty, idle, busy }, null, 2)
  )
  const panels: Array<{ title: string; bars: ReadonlyArray<Bar>; log: boolean; goal?: { value: number; label: string } }> = []
  if (tp.length > 0) {
    panels.push({
      title: `Requests/s, same effect router (median, whiskers min–max, ${rounds} rounds)`,
      log: false,
      bars: (["winddown", "effect"] as const).map((n) => {
        const xs = tp.filter((r) => r.server === n).map((r) => r.rps)
        const cpu = median(tp.filter((r) => r.server === n).map((r) => r.cpuUsPerRequest))
        return { label: n, median: median(xs), lo: min(xs), hi: max(xs), text: `${median(xs).toFixed(0)} req/s, ${cpu.toFixed(2)} µs CPU/request` }
      })
    })
  }
  if (idle.length > 0) {
    panels.push({
      title: `SIGTERM → exit, ${idleSockets} idle keep-alive sockets (ms, log scale)`,
      log: true,
      goal: { value: 30, label: "goal 30 ms" },
      bars: shutdownServers.map((n) => {
        const xs = idle.filter((r) => r.server === n).map((r) => r.signalToExitMs)
        const floor = median(empty.filter((r) => r.server === n).map((r) => r.signalToExitMs))
        return { label: n, median: median(xs), lo: min(xs), hi: max(xs), text: `${ms(median(xs))} ms (no sockets: ${ms(floor)} ms)` }
      })
    })
    panels.push({
      title: `Last response → exit, ${busySockets} busy sockets (${workMs} ms requests) (ms, log scale)`,
      log: true,
      goal: { value: 50, label: "goal 50 ms" },
      bars: shutdownServers.map((n) => {
        const rs = busy.filter((r) => r.server === n)
        const xs = rs.map((r) => r.lastResponseToExitMs)
        return { label: n, median: median(xs), lo: min(xs), hi: max(xs), text: `${ms(median(xs))} ms, ${sum(rs.map((r) => r.failed))} failed` }
      })
    })
  }
  if (panels.length > 0) {
    writeFileSync(path.join(outDir, "http.svg"), chart(panels, machine))
    console.log(`\nwrote bench/out/http.svg and bench/out/http.json`)
  }
}

await main()
