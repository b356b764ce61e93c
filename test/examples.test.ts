// Smoke test of every example under examples/: each runs in a child process,
// is exercised briefly, gets its signal(s), and must exit with the expected
// code and print its key lines. Every wait is bounded; children still running
// at the end are killed.
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { ChildProcess } from "../src/testing/index.ts"
import { Queue } from "bullmq"
import pg from "pg"
import { hasReportLine, reportFromOutput, section, stepNamed } from "./support/report.ts"
import { addresses, postgresUrl, requireServices, uniqueName } from "./support/services.ts"

// 06 and 07 run against the real servers; elsewhere than CI they are skipped
// (and said so) when the server is not there.
const redis = await requireServices(["redis"])
const postgres = await requireServices(["postgres"])
import * as Otlp from "./support/otlp.ts"
import { freePort } from "./support/http.ts"

const examplesDir = path.join(import.meta.dirname, "..", "examples")
const host = "127.0.0.1"
const children = new Set<ChildProcess.Child>()

const start = (example: string, env: Record<string, string> = {}) => {
  const child = ChildProcess.spawn(path.join(examplesDir, example), { env, killAfterMs: 65_000 })
  children.add(child)
  void child.exited.then(() => children.delete(child))
  return child
}

afterAll(() => {
  for (const child of children) {
    try {
      process.kill(child.pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
})

interface Answer {
  readonly status: number
  readonly body: string
  readonly connection: string
}

const get = (port: number, urlPath: string, agent: http.Agent | false = false) =>
  new Promise<Answer>((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent, timeout: 15_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.once("end", () => resolve({ status: res.statusCode ?? 0, body, connection: String(res.headers.connection ?? "") }))
      res.once("error", reject)
    })
    req.once("timeout", () => req.destroy(new Error(`GET ${urlPath}: no answer after 15 s`)))
    req.once("error", reject)
  })

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A slow request on a socket the server has already accepted (a warm-up
 * request opened it), so a signal sent right after it cannot race the accept.
 */
const slowRequestInFlight = async (port: number, ms: number) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  assert.strictEqual((await get(port, "/work?ms=1", agent)).status, 200)
  const answer = get(port, `/work?ms=${ms}`, agent).finally(() => agent.destroy())
  await delay(200) // the request reaches the server; nothing in the child to wait on
  return { answer }
}

const includesAll = (output: string, needles: ReadonlyArray<string>) => {
  for (const needle of needles) assert.include(output, needle, `missing "${needle}" in:\n${output}`)
}

const tested = [
  "01_basic.ts",
  "02_timeouts.ts",
  "03_escalation.ts",
  "04_http_drain.ts",
  "05_plain_node_http.ts",
  "06_worker_queue.ts",
  "06b_worker_queue_memory.ts",
  "07_db_pool.ts",
  "08_cli_cleanup.ts",
  "09_testing.ts",
  "10_observability.ts",
  "11_cluster.ts"
]

describe("examples", { concurrent: true }, () => {
  it("every example has a smoke test here", () => {
    assert.deepStrictEqual(fs.readdirSync(examplesDir).filter((f) => f.endsWith(".ts")).sort(), tested)
  })

  it("01 basic: SIGTERM runs the cleanup and flush steps, exit 0", async () => {
    const child = start("01_basic.ts")
    await child.waitFor("serving as pid")
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["db: closed", "metrics flushed", "shutdown complete"])
  })

  it("02 timeouts: budget from the pod spec, a step past its timeout and one past its phase allowance, exit 0", async () => {
    const child = start("02_timeouts.ts")
    await child.waitFor(/pid \d+: stop/)
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, [
      "grace 6 s - preStop hook 1 s - safety margin 1 s = timeout 4 s",
      "drain 2/2 \"export report\" timed out",
      "ran past its drain allowance",
      "cleanup 1/2 \"flush cache\" timed out",
      "ran past its timeout",
      "cleanup 2/2 \"close db\" done",
      "[winddown] report: signal SIGTERM"
    ])
  })

  it("03 escalation: the second signal interrupts the drain (checkpoint runs), skips the wait, exit 125", async () => {
    const child = start("03_escalation.ts")
    await child.waitFor(/pid \d+: press Ctrl\+C/)
    child.signal("SIGTERM")
    await child.waitFor("batch 1/20 sent")
    await sleep(300) // beyond NodeShutdown's repeatWindow: a deliberate second press
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 125, output)
    includesAll(output, ["checkpoint saved", "leases: gave up waiting", "db closed", "forced by SIGTERM"])
    assert.notInclude(output, "batch 20/20")
  })

  it("04 HTTP drain: a request in flight finishes with Connection: close, exit 0", async () => {
    const port = await freePort()
    const child = start("04_http_drain.ts", { PORT: String(port) })
    await child.waitFor(`listening on http://localhost:${port}`)
    const { answer } = await slowRequestInFlight(port, 1500)
    child.signal("SIGTERM")
    const { status, body, connection } = await answer
    assert.deepStrictEqual({ status, body, connection }, { status: 200, body: "worked 1500 ms\n", connection: "close" })
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["\"http: drain requests\" done", "shutdown complete"])
  })

  it("05 plain node:http: probes on the same server, readiness 503 from the signal, request drained, exit 0", async () => {
    const child = start("05_plain_node_http.ts", { PORT: "0" })
    const port = Number(/localhost:(\d+)/.exec(await child.waitFor(/listening on http:\/\/localhost:\d+/))![1])
    assert.strictEqual((await get(port, "/readyz")).status, 200)
    assert.strictEqual((await get(port, "/startupz")).status, 200)
    const { answer } = await slowRequestInFlight(port, 1500)
    child.signal("SIGTERM")
    await child.waitFor("shutting down: signal SIGTERM")
    // The 2 s pre-stop delay: still serving, but no longer ready.
    assert.strictEqual((await get(port, "/readyz")).status, 503)
    assert.strictEqual((await get(port, "/livez")).status, 200)
    const { status, body } = await answer
    assert.deepStrictEqual({ status, body }, { status: 200, body: "worked 1500 ms\n" })
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["\"http: close listener\" done", "\"http: drain requests\" done", "shutdown complete"])
  })

  it.runIf(redis.ok)("06 worker queue on Redis/BullMQ: jobs drain or are handed back with a checkpoint, the connections close, exit 0", async () => {
    const queueName = uniqueName("winddown-example-06")
    const connection = { host: addresses.redis.host, port: addresses.redis.port }
    try {
      const child = start("06_worker_queue.ts", { QUEUE: queueName, REDIS_PORT: String(connection.port) })
      await child.waitFor(/pid \d+: stop/)
      await child.waitFor(/job \d+: done/)
      child.signal("SIGTERM")
      const { code, output } = await child.exited
      assert.strictEqual(code, 0, output)
      includesAll(output, ["\"jobs: stop fetching\" done", "\"jobs: close worker\" done", "wait in Redis for the next start"])
      const report = reportFromOutput(output)
      const jobs = section(report, "bullmq jobs")
      assert.strictEqual(jobs.inFlight, 0, output)
      assert.strictEqual(jobs.handBackFailed, 0, output)
      assert.strictEqual(stepNamed(report, "jobs: close worker").phase, "cleanup")
      // Nothing left active (locked) in Redis: handed back or completed.
      const queue = new Queue(queueName, { connection })
      try {
        assert.strictEqual(await queue.getActiveCount(), 0)
      } finally {
        await queue.close()
      }
    } finally {
      const queue = new Queue(queueName, { connection })
      await queue.obliterate({ force: true })
      await queue.close()
    }
  })

  it("06b worker queue in memory: workers drain, the rest of the queue is persisted, exit 0", async () => {
    const child = start("06b_worker_queue_memory.ts")
    await child.waitFor(/pid \d+: stop/)
    await child.waitFor("metrics:")
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["persisted", "cleanup 1/1 \"persist queue\" done"])
    assert.isTrue(hasReportLine(output), output)
  })

  it.runIf(postgres.ok)("07 db pool on PostgreSQL: the long transaction rolls back before the pool closes, no connection left, exit 0", async () => {
    const child = start("07_db_pool.ts", { PGHOST: addresses.postgres.host, PGPORT: String(addresses.postgres.port) })
    await child.waitFor(/pid \d+: stop/)
    await child.waitFor(/query \d+ \(\d+ ms\) ok/)
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["report: interrupted, cancelled on the server, rolled back", "cleanup 1/1 \"db pool\" done"])
    assert.isBelow(output.indexOf("rolled back"), output.indexOf("\"db pool\" done"))
    assert.notMatch(output, /Cannot use a pool|connection closed|SqlError/i)
    const client = new pg.Client({ connectionString: postgresUrl })
    await client.connect()
    try {
      for (let i = 0; ; i++) {
        const { rows } = await client.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'winddown-07' AND pid <> pg_backend_pid()"
        )
        if (rows[0].n === 0) break
        assert.isBelow(i, 100, "the example's connections outlived it")
        await delay(100)
      }
    } finally {
      await client.end()
    }
  })

  const tempDirOf = (output: string) => {
    const dir = /writing \d+ files to (\S+);/.exec(output)?.[1]
    assert.isDefined(dir, output)
    return dir!
  }

  it("08 CLI: Ctrl+C removes the temp dir, exit 130", async () => {
    const child = start("08_cli_cleanup.ts")
    await child.waitFor("wrote part-2.txt")
    child.signal("SIGINT")
    const { code, output } = await child.exited
    assert.strictEqual(code, 130, output)
    const dir = tempDirOf(output)
    includesAll(output, [`removed ${dir}`, "[winddown] report: signal SIGINT"])
    assert.isFalse(fs.existsSync(dir), `${dir} is still there`)
  })

  it("08 CLI: finishing by itself removes the temp dir too, reason completed, exit 0", async () => {
    const child = start("08_cli_cleanup.ts", { FILES: "3" })
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    const dir = tempDirOf(output)
    includesAll(output, ["all files written", `removed ${dir}`, "[winddown] report: completed"])
    assert.isFalse(fs.existsSync(dir), `${dir} is still there`)
  })

  it("11 cluster: SIGHUP replaces both workers (new pids answer), SIGTERM stops them all, exit 0", async () => {
    const port = await freePort()
    const child = start("11_cluster.ts", { PORT: String(port), WORKERS: "2" })
    const workerPids = () => Array.from(child.output().matchAll(/worker (\d+) ready on/g), (m) => Number(m[1]))
    try {
      await child.waitFor(/primary \d+: reload with kill -HUP \d+; stop with Ctrl\+C or kill -TERM \d+/)
      // The primary's line names the first workers; their own lines may come later.
      const before = /\(([\d, ]+)\)/.exec(await child.waitFor("workers ready"))![1]!.split(", ").map(Number)
      assert.include(before, Number((await get(port, "/")).body))
      child.signal("SIGHUP")
      await child.waitFor(/reload complete|reload aborted/, 40_000)
      const after = Array.from(child.output().matchAll(/replaced by (\d+)/g), (m) => Number(m[1]))
      assert.strictEqual(after.length, 2, child.output())
      assert.include(after, Number((await get(port, "/")).body))
      child.signal("SIGTERM")
      const { code, output } = await child.exited
      assert.strictEqual(code, 0, output)
      includesAll(output, ["reload complete", "asking 2 workers to stop (SIGTERM)", "\"cluster: stop workers\" done"])
    } finally {
      for (const pid of workerPids()) {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // gone
        }
      }
    }
  }, 70_000)

  it("09 testing: both checks pass, exit 0", async () => {
    const { code, output } = await start("09_testing.ts").exited
    assert.strictEqual(code, 0, output)
    includesAll(output, ["PASS TestClock", "PASS child process", "all checks passed"])
    assert.notInclude(output, "FAIL")
  })

  it("10 observability: JSON logs, and the shutdown's spans and metrics reach the collector before exit 0", async () => {
    const receiver = await Otlp.start()
    try {
      const child = start("10_observability.ts", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_SERVICE_NAME: "example-10",
        PORT: "0"
      })
      const port = Number(/localhost:(\d+)/.exec(await child.waitFor(/listening on http:\/\/localhost:\d+/))![1])
      const accepted = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host, port, path: "/jobs?ms=1000", method: "POST", agent: false }, (res) => {
          res.resume()
          res.once("end", () => resolve(res.statusCode ?? 0))
        })
        req.once("error", reject)
        req.end()
      })
      assert.strictEqual(accepted, 202)
      await child.waitFor("job of 1000 ms started")
      child.signal("SIGTERM")
      const { code, output } = await child.exited
      assert.strictEqual(code, 0, output)

      // Every line it printed is a JSON log line; winddown's carry their fields.
      const lines = output.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l))
      const complete = lines.find((l) => String(l.message).startsWith("[winddown] shutdown complete"))
      assert.deepInclude(complete.annotations, { "winddown.exit_code": 0, "winddown.not_ok": 0 })
      assert.isDefined(lines.find((l) => l.annotations?.event === "winddown.report"), "the report, as a log line")

      // What the collector has the moment the process is gone.
      assert.deepStrictEqual(receiver.errors, [])
      const root = receiver.spans.find((s) => s.name === "winddown.shutdown")
      assert.isDefined(root, "the shutdown span")
      assert.strictEqual(root!.resource["service.name"], "example-10")
      assert.deepInclude(root!.attributes, { "winddown.reason": "signal", "winddown.exit_code": 0 })
      const drain = receiver.spans.find((s) => s.name === "winddown.drain")!
      const jobs = receiver.spans.find((s) => s.name === "jobs")!
      assert.strictEqual(jobs.parentSpanId, drain.spanId)
      assert.deepInclude(jobs.attributes, { "winddown.worker.completed": 1, "winddown.worker.requeued": 0 })
      assert.isDefined(receiver.spans.find((s) => s.name === "job"), "the job's own span")
      assert.strictEqual(
        Otlp.latest(receiver, "winddown.shutdowns", { "winddown.reason": "signal", "winddown.exit_code": "0" })?.value,
        1
      )
      assert.isDefined(receiver.logs.find((l) => String(l.body).startsWith("[winddown] shutdown complete")))
    } finally {
      await receiver.close()
    }
  })
})
