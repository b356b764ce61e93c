/**
 * What the drain costs on the real path, in one run against the real servers:
 *
 * - BullMQ (Redis): jobs per second through a plain BullMQ `Worker` (async
 *   processor), through a BullMQ worker whose processor runs an Effect with
 *   `runPromise` (what an Effect user writes without winddown), and through
 *   `BullWorker` (each job a drain unit, hand-back on shutdown);
 * - PostgreSQL (`@effect/sql-pg`): `SELECT 1` per second from 16 fibers on a
 *   10-connection pool, plain and through `drain.runJoin` with the pool
 *   released as a cleanup step.
 *
 * Rounds alternate between the variants; medians (and min–max) of ROUNDS.
 * Needs Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database
 * test, user postgres, trust).
 *
 *   node --import tsx bench/resources.ts          (ROUNDS=7 JOBS=2000 QUERIES=6000)
 */
import { PgClient } from "@effect/sql-pg"
import { Queue, Worker as BullMQWorker } from "bullmq"
import { Effect, Exit, Layer, References, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Drain, Shutdown } from "winddown"
import { BullWorker } from "winddown/bullmq"

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const JOBS = Number(process.env.JOBS ?? 2000)
const QUERIES = Number(process.env.QUERIES ?? 6000)
const CONCURRENCY = 8
const FIBERS = 16
const connection = { host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null }
const pg = { host: "127.0.0.1", port: 5432, database: "test", username: "postgres", maxConnections: 10 }

const nowMs = () => Number(process.hrtime.bigint()) / 1e6
const quiet = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(effect.pipe(Effect.scoped, Effect.provideService(References.MinimumLogLevel, "None")))

/** The same tiny job everywhere: a few microtasks of work. */
const work = (n: number) => n * 2

// ---------------------------------------------------------------- BullMQ

let queueSeq = 0
const freshQueue = async () => {
  const name = `winddown-bench-${process.pid}-${queueSeq++}`
  const queue = new Queue(name, { connection })
  await queue.addBulk(
    Array.from({ length: JOBS }, (_, i) => ({ name: "j", data: { n: i }, opts: { removeOnComplete: true } }))
  )
  return { name, queue }
}

/** Resolves with jobs/s once `count` completions were seen. */
const countCompletions = (worker: BullMQWorker, start: number) =>
  new Promise<number>((resolve) => {
    let done = 0
    worker.on("completed", () => {
      if (++done === JOBS) resolve(JOBS / ((nowMs() - start) / 1000))
    })
  })

const bullPlain = async () => {
  const { name, queue } = await freshQueue()
  const start = nowMs()
  const worker = new BullMQWorker(name, async (job) => work(job.data.n), { connection, concurrency: CONCURRENCY })
  const rate = await countCompletions(worker, start)
  await worker.close()
  await queue.obliterate({ force: true })
  await queue.close()
  return rate
}

const bullEffect = async () => {
  const { name, queue } = await freshQueue()
  const start = nowMs()
  const worker = new BullMQWorker(
    name,
    (job) => Effect.runPromise(Effect.sync(() => work(job.data.n))),
    { connection, concurrency: CONCURRENCY }
  )
  const rate = await countCompletions(worker, start)
  await worker.close()
  await queue.obliterate({ force: true })
  await queue.close()
  return rate
}

const bullWinddown = async () => {
  const { name, queue } = await freshQueue()
  const rate = await quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    const start = nowMs()
    const worker = yield* BullWorker.make("bench", {
      queue: name,
      connection,
      concurrency: CONCURRENCY,
      process: (job) => Effect.sync(() => work(job.data.n))
    }).pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    return yield* Effect.promise(() => countCompletions(worker.worker, start))
  }))
  await queue.obliterate({ force: true })
  await queue.close()
  return rate
}

// ---------------------------------------------------------------- pool

const queries = (run: (q: Effect.Effect<unknown, unknown>) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT 1` // the first connection
    let left = QUERIES
    const start = nowMs()
    yield* Effect.forEach(
      Array.from({ length: FIBERS }),
      () =>
        Effect.suspend(function loop(): Effect.Effect<void, unknown> {
          if (left-- <= 0) return Effect.void
          return Effect.flatMap(run(sql`SELECT 1`), loop)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return QUERIES / ((nowMs() - start) / 1000)
  })

const poolPlain = () => quiet(queries((q) => q).pipe(Effect.provide(PgClient.layer(pg)), Effect.orDie))

const poolWinddown = () =>
  quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    // As in examples/07: the pool is released as the cleanup step "db pool".
    // TODO(releaseAs): PgClient.layer(pg).pipe(Shutdown.releaseAs("db pool"))
    const scope = yield* Scope.make()
    yield* shutdown.addStep("db pool", Scope.close(scope, Exit.void))
    const context = yield* Layer.buildWithScope(PgClient.layer(pg), scope)
    const drain = yield* Drain.make("queries").pipe(Effect.provideService(Shutdown.Shutdown, shutdown))
    return yield* queries((q) => drain.runJoin(q)).pipe(Effect.provideContext(context))
  }).pipe(Effect.orDie))

// ---------------------------------------------------------------- run

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

const compare = async (title: string, unit: string, variants: ReadonlyArray<readonly [string, () => Promise<number>]>) => {
  const samples = new Map(variants.map(([name]) => [name, [] as Array<number>]))
  for (const [, run] of variants) await run() // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so that drift of the machine's load falls on both.
    const order = round % 2 === 0 ? variants : [...variants].reverse()
    for (const [name, run] of order) samples.get(name)!.push(await run())
  }
  console.log(`\n${title} (median of ${ROUNDS} alternating rounds)`)
  const base = median(samples.get(variants[variants.length - 2]![0])!)
  for (const [name] of variants) {
    const xs = samples.get(name)!
    const m = median(xs)
    console.log(
      `  ${name.padEnd(34)} ${fmt(m).padStart(8)} ${unit}  (min ${fmt(Math.min(...xs))}, max ${fmt(Math.max(...xs))})  ${
        (m / base).toFixed(3)
      } of "${variants[variants.length - 2]![0]}"`
    )
  }
}

await compare(`BullMQ: ${JOBS} jobs, concurrency ${CONCURRENCY}`, "jobs/s", [
  ["bullmq Worker, async processor", bullPlain],
  ["bullmq Worker, Effect processor", bullEffect],
  ["winddown BullWorker", bullWinddown]
])
await compare(`@effect/sql-pg: ${QUERIES} x SELECT 1, ${FIBERS} fibers, pool of ${pg.maxConnections}`, "queries/s", [
  ["PgClient pool", poolPlain],
  ["PgClient pool + drain.runJoin", poolWinddown]
])
