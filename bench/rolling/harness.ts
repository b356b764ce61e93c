/**
 * The rolling-restart harness: N replicas of a job service behind HAProxy,
 * keep-alive load and job submissions through it, and the replicas replaced
 * one at a time the way a Deployment with `maxSurge: 0, maxUnavailable: 1`
 * does it: SIGTERM, wait for the exit, start a new one on the same slot, wait
 * until its `/readyz` answers 200, pause, next.
 *
 * `runContender` does one whole run for one server and returns what it saw;
 * `bench/rolling/main.ts` runs every contender and prints and draws the
 * results, `test/rolling.test.ts` runs a short one for winddown.
 *
 * Everything it starts is stopped when the run ends, fails, or the process
 * is interrupted (`installCleanup`): replicas (and, through a stdin lifeline,
 * even if this process is killed), HAProxy, the temp directory and the jobs
 * table. Traffic stays on 127.0.0.1.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import pg from "pg"
import { ChildProcess } from "winddown/testing"
import * as HAProxy from "./haproxy.ts"
import * as Load from "./load.ts"
import * as Schema from "./servers/schema.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
export const root = path.resolve(here, "../..")
const host = "127.0.0.1"

// ---- contenders ----------------------------------------------------------------

export interface Contender {
  readonly name: string
  /** For tables and the chart. */
  readonly title: string
  /** What it runs, in one line. */
  readonly description: string
  /** The program, relative to the repository root, run with `node --import tsx`. */
  readonly file: string
  /** Serves its probes on a port of its own (`HEALTH_PORT`), where HAProxy checks them. */
  readonly healthPort: boolean
  /** Its settings from the run's options. */
  readonly env: (o: Options) => Record<string, string>
  /**
   * It records each claim of a job durably (`runs`), so a job resumed after a
   * checkpoint shows. The alternatives count runs inside the job's
   * transaction, which a rolled-back run takes with it.
   */
  readonly checkpoints: boolean
}

export const contenders = {
  winddown: {
    name: "winddown",
    title: "winddown",
    description:
      "the demo itself (demo/main.ts) with DATABASE_URL: effect router under NodeHttpDrain + NodeShutdown + NodeHealth probe server; jobs in PostgreSQL taken with SKIP LOCKED by a Worker, checkpointed and resumed elsewhere; pool released as \"db pool\"",
    file: "demo/main.ts",
    healthPort: true,
    env: (o) => ({ WINDDOWN_PRE_STOP: `${o.preStopMs}ms`, WINDDOWN_TIMEOUT: `${o.graceMs}ms` }),
    checkpoints: true
  },
  effect: {
    name: "effect",
    title: "effect runMain",
    description: "effect router on NodeHttpServer + runMain, no winddown; plain /readyz failing from SIGTERM; no pre-stop delay",
    file: "bench/rolling/servers/effect.ts",
    healthPort: false,
    env: (o) => ({ GRACE_MS: String(o.graceMs) }),
    checkpoints: false
  },
  terminus: {
    name: "terminus",
    title: "terminus",
    description: "node:http + @godaddy/terminus: its healthChecks for /readyz, beforeShutdown as the pre-stop delay, useExit0",
    file: "bench/rolling/servers/terminus.ts",
    healthPort: false,
    env: (o) => ({ GRACE_MS: String(o.graceMs), PRE_STOP_MS: String(o.preStopMs) }),
    checkpoints: false
  },
  fastify: {
    name: "fastify",
    title: "Fastify + close-with-grace",
    description: "Fastify 5 + close-with-grace calling app.close(); plain /readyz failing from SIGTERM; no pre-stop delay",
    file: "bench/rolling/servers/fastify.ts",
    healthPort: false,
    env: (o) => ({ GRACE_MS: String(o.graceMs) }),
    checkpoints: false
  }
} satisfies Record<string, Contender>

export type ContenderName = keyof typeof contenders

// ---- options -------------------------------------------------------------------

export interface Options {
  readonly replicas: number
  /** Full rolls (every replica replaced once); with `durationS`, at least this many. */
  readonly rolls: number
  /** Keep rolling until this many seconds of load have passed (then finish the roll under way). */
  readonly durationS?: number | undefined
  readonly connections: number
  readonly jobEveryMs: number
  /** Jobs one replica runs at once (`WORKERS`). */
  readonly workers: number
  /** The pre-stop delay of the contenders that have one (winddown's `preStop`, terminus's `beforeShutdown`). */
  readonly preStopMs: number
  /** The shutdown budget of every contender (winddown's `timeout`, the others' grace). */
  readonly graceMs: number
  /** Between one replica being ready and the next one's SIGTERM (a Deployment's `minReadySeconds`). */
  readonly gapMs: number
  /** Load before the first SIGTERM and after the last replacement. */
  readonly settleMs: number
  readonly checkIntervalMs: number
  readonly fall: number
  readonly rise: number
  readonly retries: number
  /** A request with no complete answer within this is a `timeout`. */
  readonly requestTimeoutMs: number
  /** A replica that has not exited this long after SIGTERM is killed (and counted). */
  readonly exitBudgetMs: number
  /** After the load, how long accepted jobs may take to be seen done. */
  readonly jobsTimeoutMs: number
  readonly databaseUrl: string
  readonly seed: number
  readonly log: (line: string) => void
}

export const defaults: Omit<Options, "log"> = {
  replicas: 3,
  rolls: 3,
  connections: 64,
  jobEveryMs: 200,
  workers: 8,
  preStopMs: 2_000,
  graceMs: 10_000,
  gapMs: 1_000,
  settleMs: 3_000,
  checkIntervalMs: HAProxy.defaults.checkIntervalMs,
  fall: HAProxy.defaults.fall,
  rise: HAProxy.defaults.rise,
  retries: HAProxy.defaults.retries,
  requestTimeoutMs: 10_000,
  exitBudgetMs: 60_000,
  jobsTimeoutMs: 90_000,
  databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  seed: 11
}

// ---- results -------------------------------------------------------------------

export interface ReplicaRecord {
  readonly slot: number
  readonly name: string
  readonly generation: number
  readonly pid: number
  readonly port: number
  readonly startedAt: number
  readyAt?: number
  sigtermAt?: number
  exitedAt?: number
  /** SIGTERM to exit. */
  timeToExitMs?: number
  exitCode?: number | null
  exitSignal?: string | null
  /** It did not exit within `exitBudgetMs` and was killed. */
  killed?: boolean
  /** Stopped at the end of the run, not as part of a roll. */
  final?: boolean
}

/** A replica that exited before it was ready (and was started again). */
export interface StartFailure {
  readonly slot: number
  readonly name: string
  readonly at: number
  readonly exitCode: number | null
  readonly output: string
}

export interface Restart {
  readonly roll: number
  readonly slot: number
  readonly sigtermAt: number
  readonly exitedAt: number
  readonly readyAt: number
}

export interface Percentiles {
  readonly count: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface Bin {
  readonly t: number
  readonly ok: number
  readonly failed: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface Result {
  readonly contender: string
  readonly title: string
  readonly description: string
  readonly checkpoints: boolean
  readonly options: Omit<Options, "log" | "databaseUrl">
  readonly rolls: number
  /** When the load started, on the clock of `series`, `restarts` and `replicas` (ms since the run's origin). */
  readonly loadStartAt: number
  readonly durationMs: number
  readonly requests: number
  readonly ok: number
  readonly failed: number
  readonly failedByKind: Record<Exclude<Load.Kind, "ok">, number>
  readonly failureSamples: Partial<Record<Load.Kind, Array<string>>>
  /** The ten slowest requests (`at`: ms since the run's origin). */
  readonly slowest: Load.Recorder["slowest"]
  readonly latency: Percentiles
  readonly latencyDuringRestarts: Percentiles
  readonly jobs: {
    readonly submitted: number
    readonly accepted: number
    readonly completed: number
    readonly lost: number
    readonly completedTwice: number
    /** Jobs claimed more than once: resumed after a checkpoint (only where `checkpoints`; see Contender). */
    readonly ranMoreThanOnce: number
  }
  readonly replicas: ReadonlyArray<ReplicaRecord>
  readonly startFailures: ReadonlyArray<StartFailure>
  readonly restarts: ReadonlyArray<Restart>
  readonly haproxy: { readonly retries: number; readonly redispatches: number; readonly connectionErrors: number; readonly responseErrors: number }
  readonly binMs: number
  readonly series: ReadonlyArray<Bin>
}

// ---- cleanup -------------------------------------------------------------------

const cleanups = new Set<() => Promise<void>>()

const register = (f: () => Promise<void>) => {
  cleanups.add(f)
  return async () => {
    if (!cleanups.delete(f)) return
    await f()
  }
}

/** Run every pending cleanup (replicas, HAProxy, tables, temp directories). */
export const cleanupAll = async () => {
  const all = [...cleanups]
  cleanups.clear()
  await Promise.all(all.map((f) => f().catch((e) => console.error(`cleanup: ${(e as Error).message}`))))
}

/** On Ctrl+C or SIGTERM: clean up, then exit 130 / 143. For the command, not for tests. */
export const installCleanup = () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping replicas and HAProxy, dropping tables...\n`)
      void cleanupAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143))
    })
  }
}

// ---- helpers -------------------------------------------------------------------

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** Tables and temp directories are named after the harness's pid. */
const tablePattern = /^rolling_[a-z]+_(\d+)_[a-z0-9]+$/
const tempPrefix = "winddown-rolling-"

/**
 * Remove what an earlier harness left when it was killed outright (SIGKILL
 * runs no handler; its replicas and HAProxy stop by themselves through their
 * stdin lifelines): its tables and temp directories, recognised by the pid in
 * their names, only when no process has that pid any more.
 */
const sweepLeftovers = async (db: pg.Client) => {
  const { rows } = await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE tablename LIKE 'rolling\\_%'")
  for (const { tablename } of rows) {
    const pid = Number(tablePattern.exec(tablename)?.[1])
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) await db.query(Schema.dropTable(tablename))
  }
  for (const entry of fs.readdirSync(os.tmpdir())) {
    const pid = Number(new RegExp(`^${tempPrefix}(\\d+)-`).exec(entry)?.[1])
    if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true })
  }
}

/** Ports the kernel says are free now. */
const freePorts = async (n: number): Promise<Array<number>> => {
  const servers = await Promise.all(Array.from({ length: n }, () =>
    new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer()
      s.once("error", reject)
      s.listen(0, host, () => resolve(s))
    })))
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port)
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  return ports
}

/** One GET on a fresh connection: the status, or 0 when nothing answered. */
const probe = (port: number, path: string): Promise<number> =>
  new Promise((resolve) => {
    const req = http.get({ host, port, path, agent: false, timeout: 1_000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.once("timeout", () => req.destroy())
    req.once("error", () => resolve(0))
  })

export const percentiles = (xs: ReadonlyArray<number>): Percentiles => {
  if (xs.length === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN }
  const s = Float64Array.from(xs).sort()
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  return { count: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1]! }
}

// ---- one run -------------------------------------------------------------------

interface Replica {
  readonly record: ReplicaRecord
  readonly child: ChildProcess.Child
}

export const runContender = async (name: ContenderName, partial: Partial<Options> = {}): Promise<Result> => {
  const o: Options = { ...defaults, log: (line) => process.stderr.write(`${line}\n`), ...partial }
  const contender: Contender = contenders[name]
  const log = (line: string) => o.log(`[${name}] ${line}`)
  if (!HAProxy.available()) throw new Error(`HAProxy is not installed (${HAProxy.binary}): apt-get install haproxy`)
  const table = Schema.checkTableName(`rolling_${name}_${process.pid}_${Date.now().toString(36)}`)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${tempPrefix}${process.pid}-`))
  const done: Array<() => Promise<void>> = []
  const origin = performance.now()
  const now = () => performance.now() - origin

  try {
    done.push(register(async () => fs.rmSync(dir, { recursive: true, force: true })))
    const withDb = async (f: (db: pg.Client) => Promise<void>) => {
      const db = new pg.Client({ connectionString: o.databaseUrl, application_name: "winddown-rolling-harness" })
      await db.connect()
      try {
        await f(db)
      } finally {
        await db.end()
      }
    }
    done.push(register(() => withDb(async (db) => void (await db.query(Schema.dropTable(table))))))
    await withDb(async (db) => {
      await sweepLeftovers(db)
      for (const statement of Schema.createTable(table)) await db.query(statement)
    })

    const ports = await freePorts(1 + o.replicas * (contender.healthPort ? 2 : 1))
    const lbPort = ports[0]!
    const slots = Array.from({ length: o.replicas }, (_, i) => ({
      name: `r${i + 1}`,
      port: ports[1 + i]!,
      healthPort: contender.healthPort ? ports[1 + o.replicas + i]! : undefined
    }))

    const replicas = new Map<number, Replica>()
    const records: Array<ReplicaRecord> = []
    const generations = new Map<number, number>()
    done.push(register(async () => {
      for (const r of replicas.values()) r.child.kill()
      await Promise.all([...replicas.values()].map((r) => r.child.exited))
    }))

    const startReplica = (slot: number): Replica => {
      const s = slots[slot]!
      const generation = (generations.get(slot) ?? 0) + 1
      generations.set(slot, generation)
      const child = ChildProcess.spawn(path.join(root, contender.file), {
        cwd: root,
        killAfterMs: 6 * 3_600_000,
        env: {
          PORT: String(s.port),
          HOST: host,
          ...(s.healthPort === undefined ? {} : { HEALTH_PORT: String(s.healthPort) }),
          DATABASE_URL: o.databaseUrl,
          JOBS_TABLE: table,
          WORKERS: String(o.workers),
          ...contender.env(o)
        }
      })
      const record: ReplicaRecord = { slot, name: s.name, generation, pid: child.pid, port: s.port, startedAt: now() }
      records.push(record)
      const replica = { record, child }
      replicas.set(slot, replica)
      return replica
    }

    const waitReady = async (r: Replica) => {
      const s = slots[r.record.slot]!
      const until = Date.now() + 90_000
      let exited = false
      void r.child.exited.then(() => (exited = true))
      while (true) {
        if (exited) return false
        if ((await probe(s.healthPort ?? s.port, "/readyz")) === 200) break
        if (Date.now() > until) throw new Error(`${s.name}: /readyz not 200 within 90 s:\n${r.child.output().slice(-3_000)}`)
        await sleep(50)
      }
      r.record.readyAt = now()
      return true
    }

    // Like a kubelet, start a replica again that died before it was ready
    // (twice at most); each such start is reported, never hidden.
    const startFailures: Array<StartFailure> = []
    const startReady = async (slot: number): Promise<Replica> => {
      for (let attempt = 1; ; attempt++) {
        const r = startReplica(slot)
        if (await waitReady(r)) return r
        const e = await r.child.exited
        records.splice(records.indexOf(r.record), 1)
        startFailures.push({ slot, name: slots[slot]!.name, at: now(), exitCode: e.code, output: e.output.slice(-2_000) })
        log(`${slots[slot]!.name} exited (${e.code ?? e.signal}) before it was ready:\n${e.output.slice(-2_000)}`)
        if (attempt === 3) throw new Error(`${slots[slot]!.name} exited before it was ready, 3 times:\n${e.output.slice(-3_000)}`)
      }
    }

    const stopReplica = async (r: Replica, final: boolean) => {
      r.record.sigtermAt = now()
      r.child.signal("SIGTERM")
      const exit = await Promise.race([r.child.exited, sleep(o.exitBudgetMs).then(() => undefined)])
      if (exit === undefined) {
        r.record.killed = true
        r.child.kill()
      }
      const e = await r.child.exited
      r.record.exitedAt = now()
      r.record.timeToExitMs = r.record.exitedAt - r.record.sigtermAt
      r.record.exitCode = e.code
      r.record.exitSignal = e.signal
      if (final) r.record.final = true
      if (e.code !== 0) log(`${r.record.name} (pid ${r.record.pid}) exited with ${e.code ?? e.signal}:\n${e.output.slice(-2_000)}`)
    }

    log(`starting ${o.replicas} replicas (${contender.file}) and HAProxy on 127.0.0.1:${lbPort}`)
    await Promise.all(slots.map((_, i) => startReady(i)))
    const lb = await HAProxy.start({
      port: lbPort,
      servers: slots.map((s) => ({ name: s.name, port: s.port, healthPort: s.healthPort })),
      checkIntervalMs: o.checkIntervalMs,
      fall: o.fall,
      rise: o.rise,
      retries: o.retries
    }, dir)
    done.push(register(() => lb.stop()))
    await lb.waitAllUp(30_000)

    // ---- load and rolls ----
    const recorder = new Load.Recorder()
    const jobs = new Map<string, Load.Job>()
    const agent = new http.Agent({ keepAlive: true, maxSockets: o.connections + 8 })
    const target: Load.Target = { host, port: lbPort, agent, timeoutMs: o.requestTimeoutMs, origin }
    let stopLoad!: () => void
    const loadStopped = new Promise<void>((r) => (stopLoad = r))
    const loadStart = now()
    const loadDone = Load.run(target, { connections: o.connections, jobEveryMs: o.jobEveryMs, random: Load.seeded(o.seed) }, recorder, jobs, loadStopped)
    log(`load: ${o.connections} keep-alive connections, a job every ${o.jobEveryMs} ms`)

    const restarts: Array<Restart> = []
    let rolls = 0
    try {
      await sleep(o.settleMs)
      const more = () => rolls < o.rolls || (o.durationS !== undefined && now() - loadStart < o.durationS * 1_000)
      while (more()) {
        for (let slot = 0; slot < o.replicas; slot++) {
          if (slot > 0 || rolls > 0) await sleep(o.gapMs)
          const old = replicas.get(slot)!
          await stopReplica(old, false)
          const fresh = await startReady(slot)
          restarts.push({ roll: rolls + 1, slot, sigtermAt: old.record.sigtermAt!, exitedAt: old.record.exitedAt!, readyAt: fresh.record.readyAt! })
          log(
            `roll ${rolls + 1}, ${slots[slot]!.name}: exit ${old.record.exitCode ?? old.record.exitSignal} after ${
              old.record.timeToExitMs!.toFixed(0)
            } ms, new one ready after ${(fresh.record.readyAt! - fresh.record.startedAt).toFixed(0)} ms; ${recorder.count} requests so far`
          )
        }
        rolls++
      }
      await sleep(o.settleMs)
    } finally {
      stopLoad()
    }
    const { submitted } = await loadDone
    const loadEnd = now()

    log(`load stopped after ${((loadEnd - loadStart) / 1_000).toFixed(1)} s; checking ${jobs.size} accepted jobs`)
    await Load.verifyJobs(target, jobs, o.jobsTimeoutMs)
    const stats = await lb.stats().catch(() => [] as ReadonlyArray<HAProxy.ServerStat>)
    agent.destroy()

    // The last replicas stop together, at the end (recorded, marked final).
    await Promise.all([...replicas.values()].map((r) => stopReplica(r, true)))

    // ---- figures ----
    const failedByKind = Object.fromEntries(Load.failureKinds.map((k) => [k, 0])) as Record<Exclude<Load.Kind, "ok">, number>
    let ok = 0
    for (const k of recorder.kind) {
      if (k === "ok") ok++
      else failedByKind[k]++
    }
    const inRestart = (t: number) => restarts.some((r) => t >= r.sigtermAt && t <= r.readyAt)
    const during: Array<number> = []
    recorder.at.forEach((t, i) => {
      if (inRestart(t)) during.push(recorder.latency[i]!)
    })
    const binMs = 500
    const bins = new Map<number, { ok: number; failed: number; lat: Array<number> }>()
    recorder.at.forEach((t, i) => {
      const b = Math.floor(t / binMs)
      const bin = bins.get(b) ?? { ok: 0, failed: 0, lat: [] }
      if (recorder.kind[i] === "ok") bin.ok++
      else bin.failed++
      bin.lat.push(recorder.latency[i]!)
      bins.set(b, bin)
    })
    const series = [...bins.entries()].sort((a, b) => a[0] - b[0]).map(([b, bin]) => {
      const p = percentiles(bin.lat)
      return { t: b * binMs, ok: bin.ok, failed: bin.failed, p50: p.p50, p99: p.p99, max: p.max }
    })
    const all = [...jobs.values()]
    const backend = stats.find((s) => s.name === "BACKEND")
    const servers = stats.filter((s) => s.name !== "BACKEND" && s.name !== "FRONTEND")
    const { log: _log, databaseUrl: _url, ...shown } = o
    return {
      contender: name,
      title: contender.title,
      description: contender.description,
      checkpoints: contender.checkpoints,
      options: shown,
      rolls,
      loadStartAt: loadStart,
      durationMs: loadEnd - loadStart,
      requests: recorder.count,
      ok,
      failed: recorder.count - ok,
      failedByKind,
      failureSamples: recorder.samples,
      slowest: recorder.slowest,
      latency: percentiles(recorder.latency),
      latencyDuringRestarts: percentiles(during),
      jobs: {
        submitted,
        accepted: all.length,
        completed: all.filter((j) => j.status === "done").length,
        lost: all.filter((j) => j.status !== "done").length,
        completedTwice: all.filter((j) => (j.completions ?? 0) > 1).length,
        ranMoreThanOnce: all.filter((j) => (j.runs ?? 0) > 1).length
      },
      replicas: records,
      startFailures,
      restarts,
      haproxy: {
        retries: backend?.wretr ?? servers.reduce((a, s) => a + s.wretr, 0),
        redispatches: backend?.wredis ?? servers.reduce((a, s) => a + s.wredis, 0),
        connectionErrors: backend?.econ ?? 0,
        responseErrors: backend?.eresp ?? 0
      },
      binMs,
      series
    }
  } finally {
    // Reverse order: HAProxy, replicas, table, temp directory.
    for (const f of done.reverse()) await f().catch((e) => o.log(`[${name}] cleanup: ${(e as Error).message}`))
  }
}
