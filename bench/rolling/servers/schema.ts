/**
 * The one definition of the jobs table that every rolling-bench server (and
 * the harness, which creates and drops it) uses, and the environment they
 * all read. A server that replaces these (the demo with `DATABASE_URL`) only
 * has to answer the same HTTP API; the harness reads jobs through the API,
 * never through this table.
 *
 * Columns, and who writes what:
 *
 * - `status`: `pending` (waiting, or checkpointed and handed back), `running`
 *   (claimed by `owner` until `lease_until`), `done`.
 * - `progress_ms`: how much of the job is done; a checkpoint writes it, a
 *   resumed run starts from it.
 * - `runs`: how many times the job was claimed; the claim's number is also its
 *   fencing token (a completion or hand-back only counts for the run that
 *   holds the claim).
 * - `completions`: incremented by the write that completes the job, so a job
 *   whose work was recorded twice shows 2.
 *
 * The winddown server claims with a lease (`status = 'running'`, `owner`,
 * `lease_until`) taken with `FOR UPDATE SKIP LOCKED` and hands jobs back on
 * shutdown; the alternatives hold the row lock (`FOR UPDATE SKIP LOCKED`) in
 * one transaction for the whole job, which a dying process rolls back: the
 * simplest correct queue on PostgreSQL without a shutdown library.
 */

/** Table names are interpolated into SQL: only plain lower-case identifiers. */
export const checkTableName = (name: string): string => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`JOBS_TABLE=${JSON.stringify(name)}: expected a lower-case SQL identifier (a-z, 0-9, _; at most 63)`)
  }
  return name
}

export const createTable = (table: string): ReadonlyArray<string> => {
  const t = checkTableName(table)
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (
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
      done_at timestamptz
    )`,
    `CREATE INDEX IF NOT EXISTS ${t}_open ON ${t} (accepted_at) WHERE status <> 'done'`
  ]
}

/**
 * Whether the table is there (`present`: true). Servers run {@link createTable}
 * only when it is not: even a no-op `CREATE INDEX IF NOT EXISTS` takes a SHARE
 * lock on the table, which waits behind every open job transaction, and
 * every INSERT then waits behind it (a new replica's startup stalled job
 * submissions for seconds that way).
 */
export const tableExists = (table: string): string =>
  `SELECT to_regclass('${checkTableName(table)}') IS NOT NULL AS present`

export const dropTable = (table: string): string => `DROP TABLE IF EXISTS ${checkTableName(table)}`

/** What every server reads from its environment (the demo's names where it has them). */
export const env = () => {
  const int = (name: string, fallback: number, min: number, max: number) => {
    const raw = process.env[name]
    if (raw === undefined || raw === "") return fallback
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}=${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`)
    return n
  }
  const healthPort = process.env.HEALTH_PORT
  return {
    port: int("PORT", 3000, 0, 65535),
    host: process.env.HOST ?? "127.0.0.1",
    /** A port of its own for the probes (winddown's NodeHealth server); unset: on the app port. */
    healthPort: healthPort === undefined || healthPort === "" ? undefined : int("HEALTH_PORT", 0, 0, 65535),
    databaseUrl: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test",
    table: checkTableName(process.env.JOBS_TABLE ?? "rolling_jobs"),
    /** Jobs run at the same time by one replica. */
    workers: int("WORKERS", 4, 1, 64),
    /** Pre-stop delay of the contenders that offer one (winddown reads WINDDOWN_PRE_STOP itself). */
    preStopMs: int("PRE_STOP_MS", 0, 0, 60_000),
    /** The shutdown budget given to the alternatives (winddown reads WINDDOWN_TIMEOUT). */
    graceMs: int("GRACE_MS", 10_000, 100, 600_000)
  }
}

/** Limits of the API, the same for every server. */
export const limits = { maxJobMs: 600_000, maxWorkMs: 60_000, defaultWorkMs: 100 } as const

/** How often an idle job slot looks for a pending job. */
export const pollMs = 100

/** Jobs run in slices this long: the granularity of progress and checkpoints. */
export const sliceMs = 50

/** `POST /jobs` body: `{"ms": N}`, N a whole number of milliseconds; undefined when it is not. */
export const parseJobBody = (body: unknown): number | undefined => {
  const ms = (body as { ms?: unknown } | null | undefined)?.ms
  return typeof ms === "number" && Number.isInteger(ms) && ms >= 0 && ms <= limits.maxJobMs ? ms : undefined
}

/** `GET /work?ms=N`: N, the default without it, undefined when it is not a whole number in range. */
export const parseWorkMs = (url: string): number | undefined => {
  const raw = new URL(url, "http://x").searchParams.get("ms")
  if (raw === null) return limits.defaultWorkMs
  if (!/^[0-9]{1,6}$/.test(raw)) return undefined
  const ms = Number(raw)
  return ms <= limits.maxWorkMs ? ms : undefined
}

export const badJobBody = `body must be {"ms": <whole number of milliseconds, 0 to ${limits.maxJobMs}>}`
export const badWorkMs = `ms must be a whole number from 0 to ${limits.maxWorkMs}`

/** A row as the API shows it: `GET /jobs/:id`. */
export interface JobRow {
  readonly id: string
  readonly ms: number
  readonly status: string
  readonly progress_ms: number
  readonly runs: number
  readonly completions: number
  readonly result: string | null
}

export const jobView = (row: JobRow) => ({
  id: row.id,
  status: row.status,
  ms: row.ms,
  progressMs: row.progress_ms,
  runs: row.runs,
  completions: row.completions,
  result: row.result
})

/** A job id: unique across replicas without asking the database. */
export const newJobId = (): string => crypto.randomUUID()

/** The columns `GET /jobs/:id` reads. */
export const selectJob = (table: string) =>
  `SELECT id, ms, status, progress_ms, runs, completions, result FROM ${checkTableName(table)} WHERE id = $1`

/**
 * The alternatives' queue, one transaction per job: take the oldest open job
 * nobody holds (`FOR UPDATE SKIP LOCKED`), work while holding its row lock,
 * mark it done, commit. A process that dies mid-job drops its connection, the
 * transaction rolls back, and the job is open again for another replica.
 */
export const txQueue = (table: string) => {
  const t = checkTableName(table)
  return {
    take: `SELECT id, ms, progress_ms FROM ${t} WHERE status <> 'done' ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
    start: `UPDATE ${t} SET status = 'running', runs = runs + 1 WHERE id = $1`,
    complete:
      `UPDATE ${t} SET status = 'done', completions = completions + 1, progress_ms = ms, result = $2, done_at = clock_timestamp() WHERE id = $1`
  }
}
