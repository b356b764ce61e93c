/**
 * 07 database connection pool on a real PostgreSQL, with effect's own client
 * (`@effect/sql-pg`) held as a layer: queries run as units of a drain, so the
 * pool, released as the cleanup step "db pool", only closes after every
 * query in flight has finished or been interrupted: no query ever meets a
 * closed pool ("Cannot use a pool after calling end").
 *
 * Load: a short query every 200 ms (stops at stopAccepting) and one "report"
 * transaction that takes 20 s, longer than the drain: at the hard deadline it
 * is interrupted, the server cancels it, and it rolls back before the pool
 * closes. `Drain.waitFor` shows the seed's `wait(lambda: active == 0)`.
 *
 * Needs PostgreSQL on 127.0.0.1:5432, database `test`, user `postgres`
 * without a password (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE` to change):
 *
 *   node --import tsx examples/07_db_pool.ts
 *   then Ctrl+C, or: kill -TERM <pid>
 *   psql -h 127.0.0.1 -U postgres test -c "select count(*) from pg_stat_activity where application_name = 'winddown-07'"
 */
import { NodeRuntime } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Drain, Resource, Shutdown, Worker } from "winddown"
import { NodeShutdown } from "winddown/node"

const host = process.env.PGHOST ?? "127.0.0.1"
const port = Number(process.env.PGPORT ?? 5432)

// The pool is released as the cleanup step "db pool", after the drain,
// wherever the layer is provided.
const PgLive = PgClient.layer({
  host,
  port,
  database: process.env.PGDATABASE ?? "test",
  username: process.env.PGUSER ?? "postgres",
  applicationName: "winddown-07",
  maxConnections: 10
}).pipe(Shutdown.releaseAs("db pool"))

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // Startup: an unreachable server stops the program here, with one line.
  yield* Resource.check("PostgreSQL", `${host}:${port}`, sql`SELECT 1`)
  const queries = yield* Drain.make("queries")
  let active = 0

  const query = <A, E, R>(label: string, work: Effect.Effect<A, E, R>) =>
    queries.runJoin(
      Effect.acquireUseRelease(
        Effect.sync(() => ++active),
        () => work.pipe(Effect.andThen(Effect.log(`${label} ok`))),
        () => Effect.sync(() => void active--)
      )
    )

  // The seed's wait: reported as section "wait queries done".
  yield* Drain.waitFor("queries done", () => active === 0, { pollInterval: "50 millis" })

  let n = 0
  yield* Worker.repeat(
    "load",
    Effect.suspend(() => {
      const ms = 300 + Math.floor(Math.random() * 1500)
      return Effect.forkDetach(query(`query ${++n} (${ms} ms)`, sql`SELECT pg_sleep(${ms / 1000})`))
    }),
    { schedule: Schedule.spaced("200 millis") }
  )
  yield* Effect.forkDetach(
    query(
      "report",
      sql.withTransaction(Effect.andThen(sql`SELECT 1`, sql`SELECT pg_sleep(20)`)).pipe(
        Effect.onInterrupt(() => Effect.log("report: interrupted, cancelled on the server, rolled back"))
      )
    )
  )

  yield* Effect.log(`pid ${process.pid}: stop with Ctrl+C or kill -TERM ${process.pid} (twice to force)`)
  return yield* Effect.never
})

NodeRuntime.runMain(
  program.pipe(
    Effect.provide(PgLive),
    Effect.provide(NodeShutdown.layer({ timeout: "6 seconds", preStop: "0 seconds", reportJson: true }))
  )
)
