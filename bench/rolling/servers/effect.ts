/**
 * The rolling bench's job service on effect alone: `NodeHttpServer.layer` +
 * `runMain`, `@effect/sql-pg`, no winddown. effect has no readiness probe:
 * `/readyz` is a plain route that answers 503 from SIGTERM on (runMain
 * interrupts the program at the same signal). The HTTP server's
 * `gracefulShutdownTimeout` is set to `GRACE_MS` (default 20 s). Jobs: one
 * transaction per job (`sql.withTransaction`, row lock taken with `FOR UPDATE
 * SKIP LOCKED`) in `WORKERS` fibers forked in a layer; at the signal they are
 * interrupted, so the transaction rolls back and another replica runs the job
 * again. The pool is a layer below the server and the workers, released last.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import * as http from "node:http"
import * as Schema from "./schema.ts"

const config = Schema.env()
let ready = true
process.once("SIGTERM", () => {
  ready = false
})

const json = (body: unknown, status = 200) => HttpServerResponse.jsonUnsafe(body, { status })

const Routes = Layer.mergeAll(
  HttpRouter.add(
    "POST",
    "/jobs",
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const request = yield* HttpServerRequest.HttpServerRequest
      const ms = Schema.parseJobBody(yield* Effect.orElseSucceed(request.json, () => undefined))
      if (ms === undefined) return json({ error: Schema.badJobBody }, 400)
      const id = Schema.newJobId()
      return yield* sql`INSERT INTO ${sql(config.table)} (id, ms) VALUES (${id}, ${ms})`.pipe(
        Effect.as(json({ id }, 202)),
        Effect.catch((e) => Effect.succeed(json({ error: e.message }, 503)))
      )
    })
  ),
  HttpRouter.add(
    "GET",
    "/jobs/:id",
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { id } = yield* HttpRouter.params
      const rows = yield* sql.unsafe<Schema.JobRow>(Schema.selectJob(config.table), [id ?? ""]).pipe(Effect.orDie)
      return rows[0] === undefined ? json({ error: "no such job" }, 404) : json(Schema.jobView(rows[0]))
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
  HttpRouter.add("GET", "/readyz", Effect.sync(() => json({ status: ready ? "ok" : "shuttingDown" }, ready ? 200 : 503))),
  HttpRouter.add("GET", "/livez", Effect.succeed(json({ status: "ok" })))
)

const HttpLive = HttpRouter.serve(Routes, { disableListenLog: true, disableLogger: true }).pipe(
  Layer.provide(NodeHttpServer.layer(() => http.createServer(), {
    port: config.port,
    host: config.host,
    gracefulShutdownTimeout: Duration.millis(config.graceMs)
  }))
)

const slot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const q = Schema.txQueue(config.table)
  const runOne = sql.withTransaction(Effect.gen(function*() {
    const rows = yield* sql.unsafe<{ id: string; ms: number; progress_ms: number }>(q.take)
    const job = rows[0]
    if (job === undefined) return false
    yield* sql.unsafe(q.start, [job.id])
    yield* Effect.sleep(job.ms - job.progress_ms)
    yield* sql.unsafe(q.complete, [job.id, `worked ${job.ms} ms`])
    return true
  }))
  while (true) {
    const worked = yield* runOne.pipe(
      Effect.catch((e) => Effect.as(Effect.logWarning(`[rolling] job failed: ${e.message}`), false))
    )
    if (!worked) yield* Effect.sleep(Schema.pollMs)
  }
})

const WorkersLive = Layer.effectDiscard(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [table] = yield* sql.unsafe<{ present: boolean }>(Schema.tableExists(config.table))
  if (!table?.present) for (const statement of Schema.createTable(config.table)) yield* sql.unsafe(statement)
  for (let i = 0; i < config.workers; i++) yield* Effect.forkScoped(slot)
}))

const PgLive = PgClient.layer({
  url: Redacted.make(config.databaseUrl),
  applicationName: "effect-rolling",
  maxConnections: config.workers + 4
})

const Announce = Layer.effectDiscard(
  Effect.logInfo(`[rolling] effect replica pid ${process.pid} on ${config.host}:${config.port}`)
)

NodeRuntime.runMain(
  Layer.launch(Layer.mergeAll(HttpLive, Announce).pipe(Layer.provideMerge(WorkersLive), Layer.provide(PgLive)))
)
