/**
 * HAProxy for the rolling bench: the configuration (generated into a temp
 * directory), the process, and its counters through the stats socket.
 *
 * The settings and why (also in the README, "Rolling restarts"):
 *
 * - `option httpchk` + `http-check expect status 200` on `/readyz` (the
 *   replica's probe port when it has one), `inter 200ms`, `fall 1`, `rise 1`:
 *   one 503 takes a replica out of rotation within about 200 ms of its
 *   readiness flip, and one 200 puts a new replica in. `fall 1` is safe here
 *   because a replica's readiness only fails when it is stopping; with flakier
 *   checks use `fall 2`-`3` and make the pre-stop delay cover `fall × inter`
 *   plus `timeout check`. `rise 1` is safe because readiness turns 200 only
 *   once the replica serves.
 * - `option http-keep-alive` and `http-reuse safe`: keep-alive on both sides,
 *   idle server connections shared between client connections (never for a
 *   client's first request), which is what exposes a replica that closes
 *   idle keep-alive sockets under a load balancer that still uses them.
 * - `retries 0` by default: a request HAProxy cannot deliver is an error the
 *   client sees, so the figures are the servers' own. With `retries > 0` the
 *   configuration adds `retry-on conn-failure` and `option redispatch 1`, and
 *   the harness reports how many retries and redispatches HAProxy made.
 * - Everything on 127.0.0.1; one thread (2 shared cores); no logs.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"

export const binary = process.env.HAPROXY ?? "/usr/sbin/haproxy"

export const available = (): boolean => {
  try {
    fs.accessSync(binary, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
}

export interface Backend {
  readonly name: string
  readonly port: number
  /** Where `/readyz` is checked; the app port when undefined. */
  readonly healthPort?: number | undefined
}

export interface Settings {
  readonly port: number
  readonly servers: ReadonlyArray<Backend>
  readonly checkIntervalMs: number
  readonly fall: number
  readonly rise: number
  readonly retries: number
}

export const defaults = { checkIntervalMs: 200, fall: 1, rise: 1, retries: 0 } as const

export const config = (s: Settings, statsSocket: string): string => {
  const ms = (n: number) => `${n}ms`
  const lines = [
    "global",
    "  maxconn 4096",
    "  nbthread 1",
    `  stats socket ${statsSocket} mode 600 level admin`,
    "",
    "defaults",
    "  mode http",
    "  option http-keep-alive",
    "  http-reuse safe",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "  timeout http-request 10s",
    "  timeout http-keep-alive 30s",
    "  timeout check 2s",
    `  retries ${s.retries}`,
    ...(s.retries > 0 ? ["  retry-on conn-failure", "  option redispatch 1"] : []),
    "",
    "frontend rolling",
    `  bind 127.0.0.1:${s.port}`,
    "  default_backend replicas",
    "",
    "backend replicas",
    "  balance roundrobin",
    "  option httpchk",
    "  http-check send meth GET uri /readyz",
    "  http-check expect status 200",
    `  default-server inter ${ms(s.checkIntervalMs)} fastinter ${ms(s.checkIntervalMs)} downinter ${
      ms(s.checkIntervalMs)
    } fall ${s.fall} rise ${s.rise}`,
    ...s.servers.map((b) =>
      `  server ${b.name} 127.0.0.1:${b.port} check${b.healthPort === undefined ? "" : ` port ${b.healthPort}`}`
    ),
    ""
  ]
  return lines.join("\n")
}

/** One line of `show stat`, the fields the bench reads. */
export interface ServerStat {
  readonly name: string
  readonly status: string
  /** Connection errors, response errors, retries, redispatches, 5xx answers, total sessions. */
  readonly econ: number
  readonly eresp: number
  readonly wretr: number
  readonly wredis: number
  readonly hrsp5xx: number
  readonly stot: number
}

export interface Running {
  readonly port: number
  readonly config: string
  /** Counters per server and for the backend (`BACKEND`). */
  readonly stats: () => Promise<ReadonlyArray<ServerStat>>
  /** Resolves once every server is UP (or rejects after `timeoutMs`). */
  readonly waitAllUp: (timeoutMs: number) => Promise<void>
  readonly stop: () => Promise<void>
  readonly pid: () => number | undefined
}

const ask = (socket: string, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const c = net.connect(socket)
    let out = ""
    c.setEncoding("utf8")
    c.once("connect", () => c.write(`${command}\n`))
    c.on("data", (d: string) => {
      out += d
    })
    c.once("end", () => resolve(out))
    c.once("error", reject)
    c.setTimeout(5_000, () => c.destroy(new Error(`haproxy stats socket: no answer to ${command} in 5 s`)))
  })

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const parseStats = (csv: string): ReadonlyArray<ServerStat> => {
  const [head, ...rows] = csv.split("\n").filter((l) => l.trim() !== "")
  if (head === undefined) return []
  const cols = head.replace(/^# /, "").split(",")
  const at = (row: ReadonlyArray<string>, name: string) => row[cols.indexOf(name)] ?? ""
  const num = (row: ReadonlyArray<string>, name: string) => Number(at(row, name) || 0)
  return rows.map((line) => line.split(",")).filter((row) => at(row, "pxname") === "replicas").map((row) => ({
    name: at(row, "svname"),
    status: at(row, "status"),
    econ: num(row, "econ"),
    eresp: num(row, "eresp"),
    wretr: num(row, "wretr"),
    wredis: num(row, "wredis"),
    hrsp5xx: num(row, "hrsp_5xx"),
    stot: num(row, "stot")
  }))
}

/**
 * Start HAProxy in the foreground under a small shell whose standard input is
 * a pipe from this process: when this process ends, however it ends, the
 * pipe closes and the shell stops HAProxy (the same lifeline as the test
 * helpers' orphan guard).
 */
export const start = async (settings: Settings, dir: string): Promise<Running> => {
  const socket = path.join(dir, "haproxy.sock")
  const file = path.join(dir, "haproxy.cfg")
  const text = config(settings, socket)
  fs.writeFileSync(file, text)
  const check = spawn(binary, ["-c", "-q", "-f", file], { stdio: ["ignore", "pipe", "pipe"] })
  let checkOut = ""
  check.stderr.on("data", (d: Buffer) => (checkOut += d.toString()))
  check.stdout.on("data", (d: Buffer) => (checkOut += d.toString()))
  const checked = await new Promise<number | null>((resolve) => check.once("exit", resolve))
  if (checked !== 0) throw new Error(`haproxy refused its configuration (${file}):\n${checkOut}\n${text}`)

  const shell = spawn(
    "/bin/sh",
    ["-c", `"$0" -db -f "$1" & p=$!; echo "pid $p"; read _ignored; kill $p 2>/dev/null; wait $p`, binary, file],
    { stdio: ["pipe", "pipe", "pipe"] }
  )
  let output = ""
  let haproxyPid: number | undefined
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-8_000)
    const m = /^pid (\d+)$/m.exec(output)
    if (m !== null) haproxyPid ??= Number(m[1])
  }
  shell.stdout.on("data", keep)
  shell.stderr.on("data", keep)
  shell.stdin.on("error", () => {})
  const exited = new Promise<void>((resolve) => shell.once("exit", () => resolve()))
  let gone = false
  void exited.then(() => (gone = true))

  const stats = async () => parseStats(await ask(socket, "show stat"))
  const stop = async () => {
    shell.stdin.end()
    const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)])
    if (!done) {
      if (haproxyPid !== undefined && alive(haproxyPid)) process.kill(haproxyPid, "SIGKILL")
      shell.kill("SIGKILL")
      await exited
    }
  }
  // The socket answers once HAProxy listens.
  const deadline = Date.now() + 10_000
  while (true) {
    if (gone || (haproxyPid !== undefined && !alive(haproxyPid))) {
      await stop()
      throw new Error(`haproxy exited at startup:\n${output}`)
    }
    const ok = await stats().then(() => true, () => false)
    if (ok) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`haproxy: stats socket did not answer within 10 s:\n${output}`)
    }
    await sleep(50)
  }
  return {
    port: settings.port,
    config: text,
    stats,
    waitAllUp: async (timeoutMs) => {
      const until = Date.now() + timeoutMs
      while (true) {
        const servers = (await stats()).filter((s) => s.name !== "BACKEND" && s.name !== "FRONTEND")
        if (servers.length > 0 && servers.every((s) => s.status.startsWith("UP"))) return
        if (Date.now() > until) throw new Error(`haproxy: servers not all UP after ${timeoutMs} ms: ${servers.map((s) => `${s.name} ${s.status}`).join(", ")}`)
        await sleep(50)
      }
    },
    stop,
    pid: () => haproxyPid
  }
}
