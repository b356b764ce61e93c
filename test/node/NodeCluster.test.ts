/**
 * NodeCluster with real processes and real signals: a primary and its
 * workers (test/fixtures/cluster.ts) on a free port, stopped with SIGTERM,
 * reloaded with SIGHUP under keep-alive load, a worker hung or never ready,
 * a crash, and PM2's messages. Every process is killed afterwards, workers
 * included (their pids come from the output), even when a test fails.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { NodeCluster } from "../../src/node/index.ts"
import { ChildProcess } from "../../src/testing/index.ts"
import { keepAliveLoad } from "../support/load.ts"
import { freePort } from "../support/http.ts"

const fixture = (name: string) => path.join(import.meta.dirname, "..", "fixtures", `${name}.ts`)
const host = "127.0.0.1"

/** Alive and not a zombie (a zombie is dead, only not yet reaped). */
const isAlive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"
  } catch {
    return false
  }
}

const pidsIn = (output: string, pattern: RegExp): Array<number> =>
  Array.from(output.matchAll(new RegExp(pattern, "g")), (m) => Number(m[1]))

/** Every pid a fixture printed: the primary, and each worker that started. */
const allPids = (output: string) => [
  ...pidsIn(output, /primary (\d+)/),
  ...pidsIn(output, /worker (\d+) (?:ready|will never be ready)/)
]

const killEverything = (child: ChildProcess.Child) => {
  child.kill()
  for (const pid of allPids(child.output())) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone
    }
  }
}

const countOf = (output: string, pattern: RegExp) => output.match(new RegExp(pattern, "g"))?.length ?? 0

/** Wait until `pattern` appeared `n` times in the output. */
const waitForCount = async (child: ChildProcess.Child, pattern: RegExp, n: number, timeoutMs = 30_000) => {
  const until = performance.now() + timeoutMs
  while (countOf(child.output(), pattern) < n) {
    if (performance.now() > until) throw new Error(`${pattern} appeared fewer than ${n} times:\n${child.output()}`)
    await sleep(20)
  }
}

interface Started {
  readonly child: ChildProcess.Child
  readonly port: number
  /** The first workers' pids, from the primary's "workers ready" line. */
  readonly pids: ReadonlyArray<number>
}

/** Run `f` on a started cluster; whatever happens, nothing it started is left running. */
const withCluster = async (env: Record<string, string>, f: (started: Started) => Promise<void>) => {
  const port = await freePort()
  const child = ChildProcess.spawn(fixture("cluster"), { env: { PORT: String(port), ...env }, killAfterMs: 90_000 })
  try {
    const line = await child.waitFor("workers ready")
    const pids = /\(([\d, ]+)\)/.exec(line)![1]!.split(", ").map(Number)
    await f({ child, port, pids })
  } finally {
    killEverything(child)
  }
}

const get = (port: number, urlPath: string) =>
  new Promise<{ readonly status: number; readonly pid: number }>((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: 20_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.once("end", () => resolve({ status: res.statusCode ?? 0, pid: Number(body.trim()) }))
      res.once("error", reject)
    })
    req.once("timeout", () => req.destroy(new Error(`GET ${urlPath}: no answer after 20 s`)))
    req.once("error", reject)
  })

describe("NodeCluster", () => {
  it("SIGTERM with requests in flight in both workers: all complete, every process exits, exit 0 within the budget", async () => {
    await withCluster({ WORKERS: "2", TIMEOUT: "10s", WORKER_TIMEOUT: "8s" }, async ({ child, port, pids }) => {
      const answers = Array.from({ length: 6 }, () => get(port, "/work?ms=1500"))
      await waitForCount(child, /working 1500 ms/, 6)
      child.signal("SIGTERM")
      const results = await Promise.all(answers)
      assert.deepStrictEqual(results.map((r) => r.status), [200, 200, 200, 200, 200, 200])
      assert.sameMembers(Array.from(new Set(results.map((r) => r.pid))), [...pids], "requests were in flight in both workers")
      const exit = await child.exited
      assert.strictEqual(exit.code, 0, exit.output)
      assert.isBelow(exit.elapsedMs, 10_000)
      assert.include(exit.output, "asking 2 workers to stop (SIGTERM)")
      assert.match(exit.output, /drain 2\/2 "cluster: stop workers" done/)
      assert.notInclude(exit.output, "budget is not below")
      for (const pid of pids) assert.isFalse(isAlive(pid), `worker ${pid} outlived the primary`)
    })
  })

  it("a second SIGTERM is forwarded as an escalation: the workers cut their drain, exit 125, and so does the primary", async () => {
    await withCluster({ WORKERS: "2", TIMEOUT: "10s", WORKER_TIMEOUT: "8s" }, async ({ child, port, pids }) => {
      const answer = get(port, "/work?ms=6000").catch((e: Error) => e)
      await child.waitFor("working 6000 ms")
      child.signal("SIGTERM")
      await child.waitFor("asking 2 workers to stop")
      await sleep(300) // past the primary's repeatWindow: a deliberate second signal
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 125, exit.output)
      assert.include(exit.output, "SIGTERM forwarded by the cluster primary: forcing shutdown")
      assert.isBelow(exit.elapsedMs, 6000, "the 6 s request was cut, not waited for")
      await answer
      for (const pid of pids) assert.isFalse(isAlive(pid))
    })
  })

  it("a worker whose event loop hangs: SIGKILLed at the end of the primary's budget, exit 124, nothing left", async () => {
    await withCluster({ WORKERS: "2", TIMEOUT: "3s", WORKER_TIMEOUT: "2s", HANG_WORKER_ID: "1" }, async ({ child, pids }) => {
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 124, exit.output)
      assert.include(exit.output, "hangs")
      assert.match(exit.output, /1 worker still running at the end of the budget: SIGKILLed/)
      // The primary's drain ends 400 ms before its 3 s deadline; slack for a loaded machine.
      assert.isAbove(exit.elapsedMs, 2000)
      assert.isBelow(exit.elapsedMs, 3000 + 2000)
      for (const pid of pids) assert.isFalse(isAlive(pid), `worker ${pid} outlived the primary`)
    })
  })

  it("SIGHUP under keep-alive load (and a new connection per request): 0 failed, every worker replaced", async () => {
    await withCluster({ WORKERS: "2", TIMEOUT: "10s", WORKER_TIMEOUT: "8s" }, async ({ child, port, pids }) => {
      // Not saturating, so the rest of the suite still gets the CPU; bench/cluster-reload.ts saturates.
      const keepAlive = keepAliveLoad(port, { connections: 16, thinkMs: 4 })
      // Connections handed to a worker in the instant it closes its listener.
      const churn = keepAliveLoad(port, { connections: 4, thinkMs: 4, newConnections: true })
      await sleep(1500)
      child.signal("SIGHUP")
      await child.waitFor(/reload complete|reload aborted/, 60_000)
      const reloadedAt = performance.now()
      await sleep(1000)
      const [load, fresh] = await Promise.all([keepAlive.stop(), churn.stop()])
      for (const result of [load, fresh]) {
        assert.strictEqual(result.failed, 0, JSON.stringify({ failures: result.failures, samples: result.samples }))
        assert.isAbove(result.requests, 500)
      }
      const output = child.output()
      assert.include(output, "reload complete")
      const newPids = pidsIn(output, /replaced by (\d+)/)
      assert.strictEqual(newPids.length, 2, output)
      for (const pid of pids) {
        assert.notInclude(newPids, pid)
        assert.isFalse(isAlive(pid), `old worker ${pid} still running`)
      }
      // Every worker answered before the reload; after it, only new ones (keep-alive
      // clients stay on the worker they reconnected to, so not necessarily both).
      for (const pid of pids) assert.isTrue(load.byPid.has(pid))
      const after = [...load.pidsSince(reloadedAt), ...fresh.pidsSince(reloadedAt)]
      assert.isAbove(after.length, 0)
      for (const pid of after) assert.include(newPids, pid)
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 0, exit.output)
      for (const pid of newPids) assert.isFalse(isAlive(pid))
    })
  }, 90_000)

  it("a new worker that never becomes ready: the reload is aborted, the old workers keep serving; a SIGHUP during it is queued", async () => {
    const notReady = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "winddown-cluster-")), "not-ready")
    // Long enough for a loaded machine to start the first workers (10 s seen on a shared 2-core box).
    await withCluster({ WORKERS: "2", READY_TIMEOUT: "20s", NOT_READY_FILE: notReady }, async ({ child, port, pids }) => {
      fs.writeFileSync(notReady, "")
      child.signal("SIGHUP")
      await child.waitFor("reloading 2 workers")
      child.signal("SIGHUP")
      await child.waitFor("queued")
      const aborted = await child.waitFor("reload aborted", 60_000)
      assert.match(aborted, /was not ready within 20 s; 0 of 2 replaced, keeping the workers/)
      for (const pid of pids) assert.include(aborted, String(pid))
      // The queued reload starts now, with new workers that will be ready.
      fs.rmSync(notReady)
      await waitForCount(child, /reloading 2 workers/, 2)
      const served = await Promise.all(Array.from({ length: 4 }, () => get(port, "/")))
      assert.isTrue(served.every((r) => r.status === 200 && pids.includes(r.pid)), JSON.stringify(served))
      const neverReady = pidsIn(child.output(), /worker (\d+) will never be ready/)
      assert.strictEqual(neverReady.length, 1, child.output())
      const until = performance.now() + 15_000
      while (isAlive(neverReady[0]!) && performance.now() < until) await sleep(50)
      assert.isFalse(isAlive(neverReady[0]!), "the worker that was never ready was stopped")
      // Stopping in the middle of the queued reload stops its starting worker too.
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 0, exit.output)
    })
  }, 90_000)

  it("SIGTERM while a reload starts a new worker: the starting one is stopped too, exit 0, no kill", async () => {
    await withCluster({ WORKERS: "2", TIMEOUT: "10s" }, async ({ child, pids }) => {
      child.signal("SIGHUP")
      await child.waitFor("reloading 2 workers")
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 0, exit.output)
      assert.include(exit.output, "asking 3 workers to stop (SIGTERM)")
      assert.notInclude(exit.output, "SIGKILLed")
      assert.isBelow(exit.elapsedMs, 9_000)
      for (const pid of pids) assert.isFalse(isAlive(pid))
    })
  })

  it("a worker that crashes is restarted, and the log says so", async () => {
    const crash = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "winddown-cluster-")), "crash")
    await withCluster({ WORKERS: "2", CRASH_FILE: crash }, async ({ child, port, pids }) => {
      fs.writeFileSync(crash, "")
      await get(port, "/").catch(() => undefined) // the worker that takes it exits 1 instead of answering
      const line = await child.waitFor("without being asked to stop")
      assert.match(line, /exited with code 1 without being asked to stop: restarting it in 200 ms \(1 crash in a row\)/)
      await child.waitFor("restarted, ready in")
      const served = await Promise.all(Array.from({ length: 4 }, () => get(port, "/")))
      assert.isTrue(served.every((r) => r.status === 200))
      assert.strictEqual(pids.filter(isAlive).length, 1)
      child.signal("SIGTERM")
      const exit = await child.exited
      assert.strictEqual(exit.code, 0, exit.output)
    })
  }, 60_000)

  for (const mode of ["fork", "cluster"] as const) {
    it(`PM2 ${mode} mode: "ready" is sent once serving (wait_ready), the "shutdown" message stops it, exit 0`, async () => {
      const port = await freePort()
      // In fork mode PM2 starts the NodeCluster primary; in cluster mode PM2 is the primary and runs the worker program.
      const child = ChildProcess.spawn(fixture("pm2_parent"), {
        args: [fixture("cluster")],
        env: { PORT: String(port), WORKERS: "2", PM2_MODE: mode },
        killAfterMs: 60_000
      })
      try {
        await child.waitFor("pm2: got ready")
        const exit = await child.exited
        assert.include(exit.output, "pm2: program exited with 0", exit.output)
        assert.notInclude(exit.output, "kill_timeout")
        assert.include(exit.output, `PM2 asked to shut down (message "shutdown"): treated as SIGTERM`)
        if (mode === "fork") {
          assert.include(exit.output, "asking 2 workers to stop (SIGTERM)")
          assert.isBelow(exit.output.indexOf("workers ready"), exit.output.indexOf("pm2: got ready"))
        }
      } finally {
        killEverything(child)
      }
    })
  }

  it.effect("bad options fail before anything starts, in one line", () =>
    Effect.gen(function*() {
      const cases = [
        [{ workers: 0 }, "workers: expected a whole number from 1 to 1024, got 0"],
        [{ reloadSignal: "SIGTERM" as const }, `reloadSignal: expected a signal that does not stop the cluster (signals: SIGTERM, SIGINT), got "SIGTERM"`],
        [{ restartDelay: "5s", maxRestartDelay: "1s" }, `maxRestartDelay: expected at least restartDelay (5 s), got "1s"`],
        [{ readyTimeout: "soon" }, `readyTimeout: expected a duration above zero (like 25s, 500ms or "2 seconds"), got "soon"`]
      ] as const
      for (const [options, message] of cases) {
        const exit = yield* Effect.exit(Layer.build(NodeCluster.layer(options as NodeCluster.Options)).pipe(Effect.scoped))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        assert.strictEqual((error as any)?.error?.message, message)
      }
    }))
})
