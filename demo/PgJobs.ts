/**
 * The demo's jobs in PostgreSQL (`DATABASE_URL`): one table shared by every
 * replica, through effect's SQL client (`@effect/sql-pg`). Any replica accepts
 * a job (`POST /jobs` answers 202 once the row is committed) and any replica
 * runs it.
 *
 * - **Claims.** A worker slot takes the oldest open job with `FOR UPDATE SKIP
 *   LOCKED` and marks it `running`, owned by this replica until `lease_until`
 *   (`JOBS_LEASE_MS`). The run number (`runs`) is the claim's fencing token:
 *   every later write about the job (lease renewal, checkpoint, completion,
 *   hand-back) holds only while the row is still `running` under this owner
 *   and run. So a job runs in one place at a time, and `completions` is
 *   written by exactly one run.
 * - **Leases.** While it runs, the job renews its lease and records its
 *   progress every second (a quarter of the lease when that is shorter). A
 *   replica that cannot renew stops working on the job once its lease may
 *   have run out.
 * - **Stopping (SIGTERM).** At the drain's soft deadline, or interrupted at
 *   its hard deadline, a job writes its progress and goes back to `pending`:
 *   another replica resumes it from there. The claims a stopping replica
 *   still holds when the drain is over (a take that was interrupted) are
 *   handed back by the cleanup step `release claims`, just before the pool
 *   closes (`db pool`, `Shutdown.releaseAs`). Exactly once.
 * - **Killed (SIGKILL).** Nothing is handed back: once the lease has run out,
 *   another replica takes the job over from its last recorded progress. The
 *   work since then runs again; the completion is still written once. At
 *   least once.
 *
 * Each claim and each end of a run is appended to the job's `history`
 * (`GET /jobs/:id` shows it): which replica, from which progress, how it
 * ended.
 */
import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Exit, Layer } from "effect"
import { SqlClient, type SqlError, type Statement } from "effect/sql"
import * as crypto from "node:crypto"
import * as os from "node:os"
import { Drain, Health, Resource, Shutdown, Worker } from "winddown"
import type { Database } from "./Config.ts"
import { variables } from "./Config.ts"
import type { JobView, Jobs, State } from "./Jobs.ts"
import { slice } from "./Jobs.ts"
import { JobStoreError, limits } from "./JobStore.ts"
import { Refusal, show } from "./Refusal.ts"

/** A job this replica holds. `progressMs` moves as it runs; `released` once the row is no longer ours. */
export interface Claim {
  readonly id: string
  readonly ms: number
  readonly run: number
  progressMs: number
  released: boolean
}

/** How long an idle worker slot waits before it looks for an open job again (a job accepted here wakes it at once). */
export const pollMs = 250

/** This process, as the owner of its claims: unique across hosts and restarts, readable in `history`. */
export const replicaId = (): string =>
  `${os.hostname().replace(/[^A-Za-z0-9.-]/g, "").slice(0, 40) || "host"}-${process.pid}-${crypto.randomBytes(2).toString("hex")}`

/** The pool's settings; `application_name` names the replica in `pg_stat_activity`. */
const poolConfig = (db: Database, replica: string, maxConnections: number): PgClient.PgPoolConfig => ({
  url: db.url,
  applicationName: `winddown-demo ${replica}`.slice(0, 63),
  maxConnections,
  connectTimeout: "5 seconds"
})

/** The first useful line of a driver error, and PostgreSQL's SQLSTATE or the socket's code when there is one. */
export const describeError = (e: unknown): { readonly message: string; readonly code: string | undefined } => {
  let message = e instanceof Error ? e.message : String(e)
  let code: string | undefined
  let cause: unknown = e
  for (let depth = 0; depth < 6 && typeof cause === "object" && cause !== null; depth++) {
    const c = cause as { readonly message?: unknown; readonly code?: unknown; readonly cause?: unknown; readonly reason?: unknown }
    if (typeof c.message === "string" && c.message !== "") message = c.message
    if (typeof c.code === "string") code = c.code
    cause = c.cause ?? (typeof c.reason === "object" ? c.reason : undefined)
  }
  return { message: message.split("\n")[0]!.trim(), code }
}

/** The server answered, but not to us: a wrong user or password, a database that does not exist. Fix the URL. */
const isRefusedLogin = (code: string | undefined) => code !== undefined && (code.startsWith("28") || code === "3D000")

const where = (db: Database) => `PostgreSQL at ${db.address}`
const url = (db: Database) => show(variables.database, db.shown)
const tableSetting = (db: Database) => show(variables.table, db.table)

/** The columns the demo reads and writes, and their types (`information_schema.columns.data_type`). */
const columns: Readonly<Record<string, string>> = {
  id: "text",
  ms: "integer",
  status: "text",
  progress_ms: "integer",
  runs: "integer",
  completions: "integer",
  owner: "text",
  lease_until: "timestamp with time zone",
  result: "text",
  accepted_at: "timestamp with time zone",
  done_at: "timestamp with time zone",
  history: "jsonb"
}

/**
 * Create the table if it is missing, and check that an existing one is a jobs
 * table the demo can use. Replicas starting together take turns (an advisory
 * lock): concurrent `CREATE TABLE IF NOT EXISTS` can fail in PostgreSQL. A
 * table created by an earlier version (or by the rolling bench, which creates
 * the same shape) gets the `history` column; nothing else of an existing
 * table is changed, and one that is not a jobs table is refused untouched.
 */
const createTable = (sql: SqlClient.SqlClient, db: Database) =>
  sql.withTransaction(Effect.gen(function*() {
    const t = sql(db.table)
    yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`winddown-demo jobs table ${db.table}`}))`
    yield* sql`CREATE TABLE IF NOT EXISTS ${t} (
      id text PRIMARY KEY,
      ms integer NOT NULL CHECK (ms >= 0),
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
      progress_ms integer NOT NULL DEFAULT 0,
      runs integer NOT NULL DEFAULT 0,
      completions integer NOT NULL DEFAULT 0,
      owner text,
      lease_until timestamptz,
      result text,
      accepted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
      done_at timestamptz,
      history jsonb NOT NULL DEFAULT '[]'::jsonb
    )`
    const found = yield* sql<{ column_name: string; data_type: string }>`
      SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ${db.table}`
    const types = new Map(found.map((c) => [c.column_name, c.data_type]))
    for (const [name, type] of Object.entries(columns)) {
      const has = types.get(name)
      if (name === "history" && has === undefined) continue
      if (has === type) continue
      return yield* Effect.fail(
        new Refusal({
          reason: "table",
          message: `${tableSetting(db)}: the table ${db.table} in ${where(db)}/${db.name} is not a jobs table of the demo: ${
            has === undefined ? `it has no column ${name}` : `its column ${name} is ${has}, not ${type}`
          }`
        })
      )
    }
    // Only what is missing: ALTER TABLE and CREATE INDEX lock the table even when there is nothing to do.
    if (!types.has("history")) yield* sql`ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS history jsonb NOT NULL DEFAULT '[]'::jsonb`
    const index = `${db.table}_open`
    const [{ exists }] = (yield* sql<{ exists: boolean }>`SELECT to_regclass(${index}) IS NOT NULL AS exists`) as unknown as [
      { exists: boolean }
    ]
    if (!exists) yield* sql`CREATE INDEX IF NOT EXISTS ${sql(index)} ON ${t} (accepted_at) WHERE status <> 'done'`
  }))

/**
 * Before the service starts: connect, create or check the table, disconnect.
 * Refuses with one line: a server that does not answer (75, try again later),
 * a login it refuses (78, fix the URL), a table it cannot create or use (74).
 */
export const prepare = (db: Database, replica: string): Effect.Effect<void, Refusal> =>
  Effect.scoped(Effect.gen(function*() {
    const context = yield* Layer.build(PgClient.layer(poolConfig(db, replica, 1))).pipe(
      Effect.mapError((e) => new Refusal({ reason: "setting", message: `${url(db)}: ${describeError(e).message}` }))
    )
    const sql = Context.get(context, SqlClient.SqlClient)
    // Resource.check words "unreachable" and the timeout; a refused login is told apart first.
    const refusedLogin = yield* Resource.check(
      "PostgreSQL",
      db.address,
      sql`SELECT 1`.pipe(
        Effect.as(undefined),
        Effect.catch((e) => {
          const { code, message } = describeError(e)
          return isRefusedLogin(code) ? Effect.succeed(`${message} (${code})`) : Effect.fail(e)
        })
      )
    ).pipe(Effect.mapError((e) => new Refusal({ reason: "unavailable", message: `${url(db)}: ${e.message}` })))
    if (refusedLogin !== undefined) {
      return yield* Effect.fail(
        new Refusal({ reason: "setting", message: `${url(db)}: ${where(db)} refused the connection: ${refusedLogin}` })
      )
    }
    yield* createTable(sql, db).pipe(
      Effect.catchTag("SqlError", (e) => {
        const { code, message } = describeError(e)
        return Effect.fail(
          new Refusal({
            reason: code?.startsWith("08") ? "unavailable" : "table",
            message: `${tableSetting(db)}: cannot create or use the table in ${where(db)}/${db.name}: ${message}`
          })
        )
      })
    )
  }))

interface Row {
  readonly id: string
  readonly ms: number
  readonly status: State
  readonly progress_ms: number
  readonly runs: number
  readonly completions: number
  readonly result: string | null
  readonly history: ReadonlyArray<unknown>
}

const storeError = (db: Database, e: SqlError.SqlError) =>
  new JobStoreError({ message: `PostgreSQL table ${db.table}: ${describeError(e).message}` })

const idPattern = new RegExp(`^[A-Za-z0-9_-]{1,${limits.maxIdLength}}$`)

/** The jobs over the table, for a pool this process holds. */
export const make = (sql: SqlClient.SqlClient, db: Database, replica: string) => {
  const t = sql(db.table)
  const leaseSecs = db.leaseMs / 1000
  const heartbeatMs = Math.min(1_000, db.leaseMs / 4)
  const lease = sql`clock_timestamp() + make_interval(secs => ${leaseSecs})`
  /** An entry of `history`, the way the journal names them (`t`). */
  const event = (kind: string, extra: Statement.Fragment = sql``) =>
    sql`jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('t', ${kind}::text, 'replica', ${replica}::text, 'at', clock_timestamp() ${extra})))`
  /** Only while the job is still ours: this owner, this run, still running. */
  const ours = (c: Claim) => sql`id = ${c.id} AND owner = ${replica} AND runs = ${c.run} AND status = 'running'`

  // A job accepted here wakes an idle slot of this replica at once; the others find it within pollMs.
  let wake = Deferred.makeUnsafe<void>()
  const wakeUp = () => {
    const woken = wake
    wake = Deferred.makeUnsafe<void>()
    Deferred.doneUnsafe(woken, Exit.void)
  }

  const claimOnce = sql<{ id: string; ms: number; progress_ms: number; runs: number }>`
    UPDATE ${t} SET status = 'running', owner = ${replica}, runs = runs + 1, lease_until = ${lease},
      history = history || ${
    event(
      "started",
      sql`, 'run', runs + 1, 'progressMs', progress_ms, 'tookOverFrom', CASE WHEN status = 'running' THEN owner END`
    )
  }
    WHERE id = (
      SELECT id FROM ${t}
      WHERE status = 'pending' OR (status = 'running' AND lease_until < clock_timestamp())
      ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, ms, progress_ms, runs`

  let claimFailing = false
  const take: Effect.Effect<Claim> = Effect.gen(function*() {
    while (true) {
      const waiting = wake
      // The claim itself is not interruptible: once the row is ours, the slot gets it (or the
      // cleanup step "release claims" hands it back).
      const rows = yield* Effect.uninterruptible(claimOnce).pipe(
        Effect.tap(() =>
          claimFailing
            ? Effect.sync(() => (claimFailing = false)).pipe(Effect.andThen(Effect.logInfo("[demo] taking jobs again")))
            : Effect.void
        ),
        Effect.catch((e) =>
          Effect.as(
            claimFailing ? Effect.void : Effect.sync(() => (claimFailing = true)).pipe(
              Effect.andThen(Effect.logWarning(`[demo] cannot take jobs: ${describeError(e).message}; trying again`))
            ),
            []
          )
        )
      )
      const row = rows[0]
      if (row !== undefined) {
        return { id: row.id, ms: row.ms, run: row.runs, progressMs: row.progress_ms, released: false }
      }
      yield* Effect.timeoutOption(Deferred.await(waiting), pollMs)
    }
  })

  const warn = (c: Claim, what: string) => Effect.logWarning(`[demo] job ${c.id} (run ${c.run}): ${what}`)

  /** Give the job back with its progress, for another replica (or a later start) to resume. */
  const handBack = (c: Claim, kind: "checkpointed" | "handedBack") =>
    Effect.suspend(() => {
      if (c.released) return Effect.void
      c.released = true
      return sql`
        UPDATE ${t} SET status = 'pending', owner = NULL, lease_until = NULL, progress_ms = ${c.progressMs},
          history = history || ${event(kind, sql`, 'run', ${c.run}::int, 'progressMs', ${c.progressMs}::int`)}
        WHERE ${ours(c)}`.pipe(
        Effect.catch((e) =>
          warn(
            c,
            `could not record "${kind}" (${describeError(e).message}); another replica takes it over from its last recorded progress once its lease has run out`
          )
        )
      )
    })

  const run = (c: Claim): Effect.Effect<void | Worker.Requeue> => {
    const checkpoint = handBack(c, "checkpointed")
    const work = Effect.gen(function*() {
      const wrapUp = yield* Drain.WrapUp
      // The lease holds at least leaseMs from the moment a renewal was sent.
      let renewedAt = performance.now()
      let nextBeat = renewedAt + heartbeatMs
      let renewFailing = false
      while (c.progressMs < c.ms) {
        if (wrapUp.isRequestedUnsafe()) {
          yield* checkpoint
          return Worker.Requeue
        }
        if (performance.now() - renewedAt >= db.leaseMs) {
          c.released = true
          return yield* warn(c, "its lease may have run out (it could not be renewed): stopping; any replica takes it over from its last recorded progress")
        }
        const step = Math.min(slice, c.ms - c.progressMs)
        yield* Effect.sleep(step)
        c.progressMs += step
        if (performance.now() >= nextBeat && c.progressMs < c.ms) {
          const sent = performance.now()
          nextBeat = sent + heartbeatMs
          const renewed = yield* Effect.result(
            sql<{ id: string }>`UPDATE ${t} SET lease_until = ${lease}, progress_ms = ${c.progressMs} WHERE ${ours(c)} RETURNING id`
          )
          if (renewed._tag === "Success") {
            if (renewed.success.length === 0) {
              c.released = true
              return yield* warn(c, "no longer ours (its lease ran out and another replica took it): stopping")
            }
            renewedAt = sent
            renewFailing = false
          } else if (!renewFailing) {
            renewFailing = true
            yield* warn(c, `could not renew its lease (${describeError(renewed.failure).message}); working on while it holds`)
          }
        }
      }
      // The completion is one write, only while the job is still ours, not interruptible.
      yield* Effect.uninterruptible(Effect.suspend(() =>
        sql<{ id: string }>`
          UPDATE ${t} SET status = 'done', completions = completions + 1, progress_ms = ms, result = ${`worked ${c.ms} ms`},
            owner = NULL, lease_until = NULL, done_at = clock_timestamp(),
            history = history || ${event("completed", sql`, 'run', ${c.run}::int`)}
          WHERE ${ours(c)} RETURNING id`.pipe(
          Effect.flatMap((rows) => {
            c.released = true
            return rows.length === 1
              ? Effect.void
              : warn(c, "finished, but no longer ours (its lease ran out and another replica took it): completion not recorded")
          }),
          Effect.catch((e) =>
            warn(
              c,
              `could not record its completion (${describeError(e).message}); it runs again from its last recorded progress once its lease has run out`
            )
          )
        )
      ))
    })
    return work.pipe(Effect.onInterrupt(() => checkpoint))
  }

  /** What this replica still holds at the end (a take interrupted after its claim): back to pending. */
  const releaseAll = sql<{ id: string }>`
    UPDATE ${t} SET status = 'pending', owner = NULL, lease_until = NULL,
      history = history || ${event("handedBack", sql`, 'run', runs, 'progressMs', progress_ms`)}
    WHERE owner = ${replica} AND status = 'running' RETURNING id`.pipe(
    Effect.flatMap((rows) =>
      rows.length === 0 ? Effect.void : Effect.logInfo(`[demo] handed back ${rows.length} job(s) this replica still held`)
    )
  )

  const jobs: Jobs<Claim> = {
    description: `PostgreSQL table ${db.table} at ${db.address}/${db.name}, replica ${replica}`,
    get: (id) =>
      !idPattern.test(id) ? Effect.succeed(undefined) : sql<Row>`
        SELECT status, ms, progress_ms, result, runs, completions, history FROM ${t} WHERE id = ${id}`.pipe(
        Effect.map((rows): JobView | undefined => {
          const row = rows[0]
          return row === undefined ? undefined : {
            state: row.status,
            ms: row.ms,
            progressMs: row.progress_ms,
            result: row.result ?? undefined,
            runs: row.runs,
            completions: row.completions,
            history: row.history
          }
        }),
        Effect.mapError((e) => storeError(db, e))
      ),
    accept: (ms) =>
      Effect.suspend(() => {
        const id = crypto.randomUUID()
        return sql`INSERT INTO ${t} (id, ms) VALUES (${id}, ${ms})`.pipe(
          Effect.mapError((e) => storeError(db, e)),
          Effect.map(() => {
            wakeUp()
            return { id }
          })
        )
      }),
    counts: sql<{ status: State; n: number }>`SELECT status, count(*)::int AS n FROM ${t} GROUP BY status`.pipe(
      Effect.map((rows) => {
        const counts = { pending: 0, running: 0, done: 0 }
        for (const { n, status } of rows) counts[status] = n
        return counts
      }),
      Effect.mapError((e) => storeError(db, e))
    ),
    take,
    run,
    requeue: (c) => handBack(c, "handedBack")
  }
  return { jobs, releaseAll }
}

/**
 * Inside the Shutdown: the pool, held as the cleanup step `db pool` (after the
 * drain), the step `release claims` just before it, a readiness check, and
 * the jobs.
 */
export const open = (db: Database, replica: string, workers: number) =>
  Effect.gen(function*() {
    // Room for every worker's claim and heartbeat, and for requests.
    const context = yield* Layer.build(
      PgClient.layer(poolConfig(db, replica, workers + 4)).pipe(Shutdown.releaseAs("db pool"))
    ).pipe(Effect.mapError((e) => new Refusal({ reason: "unavailable", message: `${url(db)}: ${describeError(e).message}` })))
    const sql = Context.get(context, SqlClient.SqlClient)
    const { jobs, releaseAll } = make(sql, db, replica)
    // Registered after the pool: cleanup runs in reverse order, so this runs first.
    yield* Shutdown.addStep("release claims", releaseAll)
    yield* Health.addCheck("database", sql`SELECT 1`)
    return jobs
  }) satisfies Effect.Effect<Jobs<Claim>, unknown, unknown>
