/**
 * The rolling bench's job service under winddown, on PostgreSQL through
 * `@effect/sql-pg`. Its HTTP API is the demo's (`POST /jobs`, `GET /jobs/:id`,
 * `GET /work?ms=`, the probes), so `demo/main.ts` with `DATABASE_URL` can take
 * its place in the harness.
 *
 * - HTTP: an effect router under `NodeHttpDrain.layer`; probes on their own
 *   port (`HEALTH_PORT`, `NodeHealth.layerServer`) when given, and on the app
 *   port too (`Health.routes()`).
 * - Jobs: a `Worker` whose `take` claims the oldest open job with `FOR UPDATE
 *   SKIP LOCKED` (status `running`, a lease, the run number as fencing token).
 *   A job runs in slices, renewing its lease and recording its progress every
 *   second; asked to wrap up (the drain's soft deadline) it returns
 *   `Worker.Requeue`, and the worker's `requeue` writes the checkpoint and
 *   hands the job back (`pending`), where another replica resumes it from its
 *   progress. The completion is one uninterruptible, fenced write.
 * - The pool is released as the cleanup step `db pool`
 *   (`Shutdown.releaseAs`), after the requests and the jobs drained; just
 *   before it, the step `release claims` hands back anything this process
 *   still holds (a claim whose take was interrupted, a failed hand-back).
 * - A replica killed without a shutdown (SIGKILL) leaves its claims behind:
 *   their lease runs out after 10 s and another replica takes them.
 *
 * env: PORT, HOST, HEALTH_PORT, DATABASE_URL, JOBS_TABLE, WORKERS, and every
 * WINDDOWN_* variable (the harness sets WINDDOWN_PRE_STOP and WINDDOWN_TIMEOUT).
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import * as os from "node:os"
import { Drain, Health, Resource, Shutdown, Worker } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"
import * as Schema from "./schema.ts"

const config = Schema.env()
const owner = `${os.hostname()}:${process.pid}`
/** A claim nobody renews for this long is open again (the replica died without a shutdown). */
const leaseSeconds = 10
const heartbeatMs = 1_000

/** A claimed job; `progressMs` moves as it runs and is what a hand-back records. */
interface Claim {
  readonly id: string
  readonly ms: number
  readonly run: number
  progressMs: number
}

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

const makeJobs = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const t = sql(config.table)
  const fenced = (c: Claim) => sql`id = ${c.id} AND owner = ${owner} AND runs = ${c.run} AND status = 'running'`

  const claimOnce = sql<{ id: string; ms: number; progress_ms: number; runs: number }>`
    UPDATE ${t} SET status = 'running', owner = ${owner}, runs = runs + 1,
      lease_until = clock_timestamp() + make_interval(secs => ${leaseSeconds})
    WHERE id = (
      SELECT id FROM ${t}
      WHERE status = 'pending' OR (status = 'running' AND lease_until < clock_timestamp())
      ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, ms, progress_ms, runs`

  // Waits until it holds a job. The claim itself is uninterruptible; a claim
  // whose delivery is interrupted anyway is handed back by `releaseClaims`.
  const take: Effect.Effect<Claim> = Effect.gen(function*() {
    while (true) {
      const rows = yield* Effect.uninterruptible(claimOnce).pipe(
        Effect.catch((e) => Effect.as(Effect.logWarning(`[rolling] claim failed: ${e.message}`), []))
      )
      const row = rows[0]
      if (row !== undefined) return { id: row.id, ms: row.ms, run: row.runs, progressMs: row.progress_ms }
      yield* Effect.sleep(Schema.pollMs)
    }
  })

  const heartbeat = (c: Claim) =>
    sql<{ id: string }>`
      UPDATE ${t} SET lease_until = clock_timestamp() + make_interval(secs => ${leaseSeconds}), progress_ms = ${c.progressMs}
      WHERE ${fenced(c)} RETURNING id`.pipe(Effect.map((rows) => rows.length === 1))

  const complete = (c: Claim) =>
    sql<{ id: string }>`
      UPDATE ${t} SET status = 'done', completions = completions + 1, progress_ms = ms, owner = NULL,
        lease_until = NULL, result = ${`worked ${c.ms} ms`}, done_at = clock_timestamp()
      WHERE ${fenced(c)} RETURNING id`.pipe(Effect.map((rows) => rows.length === 1))

  const run = (c: Claim) =>
    Effect.gen(function*() {
      const wrapUp = yield* Drain.WrapUp
      let beat = Date.now()
      while (c.progressMs < c.ms) {
        if (wrapUp.isRequestedUnsafe()) return Worker.Requeue
        const step = Math.min(Schema.sliceMs, c.ms - c.progressMs)
        yield* Effect.sleep(step)
        c.progressMs += step
        if (Date.now() - beat >= heartbeatMs) {
          beat = Date.now()
          if (!(yield* heartbeat(c))) return yield* Effect.logWarning(`[rolling] job ${c.id}: claim lost, stopping`)
        }
      }
      // The completion is one write, fenced by the claim, not interruptible.
      const ok = yield* Effect.uninterruptible(complete(c))
      if (!ok) yield* Effect.logWarning(`[rolling] job ${c.id}: claim lost before completion, not recorded`)
    })

  // The checkpoint: the progress is recorded and the job is open again.
  const handBack = (c: Claim) =>
    sql`UPDATE ${t} SET status = 'pending', owner = NULL, lease_until = NULL, progress_ms = ${c.progressMs}
      WHERE ${fenced(c)}`

  const releaseClaims = Effect.gen(function*() {
    const rows = yield* sql<{ id: string }>`
      UPDATE ${t} SET status = 'pending', owner = NULL, lease_until = NULL
      WHERE owner = ${owner} AND status = 'running' RETURNING id`
    if (rows.length > 0) yield* Effect.logWarning(`[rolling] handed back ${rows.length} claim(s) left at the end`)
  })

  const accept = (ms: number) =>
    Effect.gen(function*() {
      const id = Schema.newJobId()
      yield* sql`INSERT INTO ${t} (id, ms) VALUES (${id}, ${ms})`
      return id
    })

  const get = (id: string) =>
    Effect.map(sql.unsafe<Schema.JobRow>(Schema.selectJob(config.table), [id]), (rows) => rows[0])

  return { take, run, handBack, releaseClaims, accept, get }
})

type Jobs = Effect.Success<typeof makeJobs>

const routes = (jobs: Jobs) =>
  Layer.mergeAll(
    HttpRouter.add(
      "POST",
      "/jobs",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const ms = Schema.parseJobBody(yield* Effect.orElseSucceed(request.json, () => undefined))
        if (ms === undefined) return json({ error: Schema.badJobBody }, 400)
        // In the table before the answer: a 202 is a promise the database keeps.
        return yield* jobs.accept(ms).pipe(
          Effect.map((id) => json({ id }, 202)),
          Effect.catch((e) => Effect.succeed(json({ error: `not accepted: ${e.message}` }, 503)))
        )
      })
    ),
    HttpRouter.add(
      "GET",
      "/jobs/:id",
      Effect.gen(function*() {
        const { id } = yield* HttpRouter.params
        const row = id === undefined ? undefined : yield* jobs.get(id).pipe(Effect.orDie)
        return row === undefined ? json({ error: "no such job" }, 404) : json(Schema.jobView(row))
      })
    ),
    HttpRouter.add(
      "GET",
      "/work",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const ms = Schema.parseWorkMs(request.url)
        if (ms === undefined) return json({ error: Schema.badWorkMs }, 400)
        yield* Effect.sleep(ms)
        return json({ worked: ms })
      })
    ),
    Health.routes()
  )

const main = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* Resource.check("PostgreSQL", config.databaseUrl.replace(/\/\/[^@]*@/, "//"), sql`SELECT 1`)
  const [table] = yield* sql.unsafe<{ present: boolean }>(Schema.tableExists(config.table))
  if (!table?.present) for (const statement of Schema.createTable(config.table)) yield* sql.unsafe(statement)
  const jobs = yield* makeJobs
  // Cleanup, before the pool closes (registered after it, so it runs first).
  yield* Shutdown.addStep("release claims", Effect.ignore(jobs.releaseClaims))
  yield* Worker.make("jobs", {
    take: jobs.take,
    process: jobs.run,
    requeue: jobs.handBack,
    concurrency: config.workers
  })
  const http = yield* Layer.build(
    NodeHttpDrain.layer(HttpRouter.serve(routes(jobs), { disableListenLog: true, disableLogger: true }), {
      port: config.port,
      host: config.host
    })
  )
  if (config.healthPort !== undefined) {
    yield* Layer.build(NodeHealth.layerServer({ port: config.healthPort, host: config.host }))
  }
  yield* Health.markStarted
  yield* Effect.logInfo(
    `[rolling] winddown replica pid ${process.pid} on ${config.host}:${Context.get(http, NodeHttpDrain.Server).port}`
  )
  return yield* Effect.never
})

const PgLive = PgClient.layer({
  url: Redacted.make(config.databaseUrl),
  applicationName: "winddown-rolling",
  maxConnections: config.workers + 4
}).pipe(Shutdown.releaseAs("db pool"))

NodeRuntime.runMain(
  main.pipe(
    Effect.provide(Health.layer()),
    Effect.provide(PgLive),
    Effect.provide(NodeShutdown.layerConfig({ timeout: "10 seconds" }))
  )
)
