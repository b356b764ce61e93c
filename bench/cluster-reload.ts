/**
 * What a cluster reload costs clients: starts `bench/cluster/server.ts`
 * under NodeCluster on a free loopback port, drives closed-loop keep-alive
 * load (Node's http.Agent, which honours `Connection: close`), sends SIGHUP
 * `--reloads` times one after the other, keeps the load on until
 * `--duration` has passed, then stops the load and sends SIGTERM.
 *
 * Prints one JSON object on stdout (progress goes to stderr): requests,
 * failed (by kind), latency p50 / p99 / max over the whole run and over the
 * reloads alone, each reload's duration and replacements (old pid → new pid),
 * and the time from SIGTERM to the primary's exit with its exit code. Exit
 * code 1 when a request failed or a reload did not replace every worker.
 *
 *   node --import tsx bench/cluster-reload.ts [--workers 2] [--connections 32]
 *     [--churn 0] [--duration 10s] [--reloads 1] [--path /]
 *
 * `--churn N` adds N loops that open a new connection for every request: the
 * most connections handed to a worker in the instant it closes its listener.
 * Everything it starts is killed when it ends, also on Ctrl+C or a failure.
 */
import * as http from "node:http"
import type * as net from "node:net"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { parseArgs } from "node:util"
import { parseMillis } from "../src/internal/duration.ts"
import { ChildProcess } from "../src/testing/index.ts"
import { keepAliveLoad, type LoadResult } from "../test/support/load.ts"

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "2" },
    connections: { type: "string", default: "32" },
    churn: { type: "string", default: "0" },
    duration: { type: "string", default: "10s" },
    reloads: { type: "string", default: "1" },
    path: { type: "string", default: "/" }
  }
})
const workers = Number(values.workers)
const connections = Number(values.connections)
const churn = Number(values.churn)
const durationMs = parseMillis(values.duration) ?? Number(values.duration)
const reloads = Number(values.reloads)
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`)

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = http.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const count = (text: string, pattern: RegExp) => text.match(new RegExp(pattern, "g"))?.length ?? 0

const waitForCount = async (child: ChildProcess.Child, pattern: RegExp, n: number, timeoutMs: number) => {
  const until = performance.now() + timeoutMs
  while (count(child.output(), pattern) < n) {
    if (performance.now() > until) throw new Error(`no ${n}th ${pattern} after ${timeoutMs} ms:\n${child.output()}`)
    await sleep(10)
  }
}

const port = await freePort()
const server = ChildProcess.spawn(path.join(import.meta.dirname, "cluster", "server.ts"), {
  env: { PORT: String(port), WORKERS: String(workers) },
  killAfterMs: durationMs + 180_000
})
const killEverything = () => {
  server.kill()
  for (const m of server.output().matchAll(/\(([\d, ]+)\)|replaced by (\d+)/g)) {
    for (const pid of (m[1] ?? m[2]!).split(", ").map(Number)) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone
      }
    }
  }
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killEverything()
    process.exit(130)
  })
}

try {
  const ready = await server.waitFor("workers ready", 120_000)
  const first = /\(([\d, ]+)\)/.exec(ready)![1]!.split(", ").map(Number)
  log(`${workers} workers ready (${first.join(", ")}) on port ${port}; ${connections} keep-alive loops${churn > 0 ? ` + ${churn} with a new connection per request` : ""}`)
  const start = performance.now()
  const load = keepAliveLoad(port, { connections, path: values.path })
  const churnLoad = churn > 0 ? keepAliveLoad(port, { connections: churn, path: values.path, newConnections: true }) : undefined
  await sleep(Math.min(1000, durationMs / 4))
  const reloadRuns: Array<{ readonly ms: number; readonly outcome: string }> = []
  const reloadFrom = performance.now()
  for (let i = 1; i <= reloads; i++) {
    const t0 = performance.now()
    const abortedBefore = count(server.output(), /reload aborted/)
    server.signal("SIGHUP")
    await waitForCount(server, /reload complete|reload aborted/, i, 120_000)
    const outcome = count(server.output(), /reload aborted/) > abortedBefore ? "aborted" : "complete"
    reloadRuns.push({ ms: Math.round(performance.now() - t0), outcome })
    log(`reload ${i}: ${outcome} in ${Math.round(performance.now() - t0)} ms`)
  }
  const reloadTo = performance.now()
  await sleep(Math.max(1000, durationMs - (performance.now() - start)))
  const [result, churned] = await Promise.all([load.stop(), churnLoad?.stop()])
  const stopAt = performance.now()
  server.signal("SIGTERM")
  const exit = await server.exited
  const stopMs = performance.now() - stopAt
  const replaced = Array.from(exit.output.matchAll(/worker (\d+) replaced by (\d+)/g), (m) => ({ old: Number(m[1]), new: Number(m[2]) }))
  const all: Array<LoadResult> = churned === undefined ? [result] : [result, churned]
  const failures: Record<string, number> = {}
  for (const r of all) for (const [kind, n] of Object.entries(r.failures)) failures[kind] = (failures[kind] ?? 0) + n
  const round = (ms: number) => Math.round(ms * 10) / 10
  const during = result.latencyBetween(reloadFrom, reloadTo)
  const report = {
    node: process.version,
    workers,
    connections,
    churnConnections: churn,
    durationMs: Math.round(result.durationMs),
    requests: all.reduce((n, r) => n + r.requests, 0),
    failed: all.reduce((n, r) => n + r.failed, 0),
    failures,
    failureSamples: all.flatMap((r) => r.samples).slice(0, 5),
    keepAlive: { requests: result.requests, p50Ms: round(result.p50Ms), p99Ms: round(result.p99Ms), maxMs: round(result.maxMs) },
    duringReloads: { requests: during.requests, p50Ms: round(during.p50Ms), p99Ms: round(during.p99Ms), maxMs: round(during.maxMs) },
    ...(churned === undefined
      ? {}
      : { newConnections: { requests: churned.requests, p50Ms: round(churned.p50Ms), p99Ms: round(churned.p99Ms), maxMs: round(churned.maxMs) } }),
    reloads: reloadRuns,
    replaced,
    stop: { workers, ms: Math.round(stopMs), exitCode: exit.code }
  }
  console.log(JSON.stringify(report))
  const everyReplaced = replaced.length === workers * reloads && reloadRuns.every((r) => r.outcome === "complete")
  process.exitCode = report.failed === 0 && everyReplaced && exit.code === 0 ? 0 : 1
} catch (error) {
  log(String(error))
  process.exitCode = 1
} finally {
  killEverything()
}
