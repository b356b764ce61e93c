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
 * - RabbitMQ (amqplib): messages per second through a plain amqplib consumer
 *   (async callback that acks), through one that runs an Effect with
 *   `runPromise` per message, and through `AmqpConsumer` (each message a
 *   drain unit), prefetch 8 and at most 8 at once for all three;
 *
 * - the paths alone, without the servers: the CPU time `BullWorker` adds to
 *   a job between BullMQ handing it over and getting its result (next to an
 *   Effect processor run with `runPromise`), what `drain.runJoin` adds to a
 *   query, and what `AmqpConsumer` adds to a message between amqplib's
 *   delivery and the ack (on a stand-in channel).
 *
 * Rounds alternate between the variants; medians (and min–max) of ROUNDS.
 * Besides the rate (wall clock, which this shared machine's load moves a
 * lot), each variant reports this process's CPU time per job or query
 * (`process.cpuUsage`), which is what winddown adds and is far steadier.
 * Needs Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432 (database
 * test, user postgres, trust) and RabbitMQ on 127.0.0.1:5672 (guest/guest).
 * `ONLY=bullmq,pg,amqp` runs some of the sections; `ONLY=paths` only the
 * paths alone (no server needed).
 *
 *   node --import tsx bench/resources.ts          (ROUNDS=7 JOBS=2000 QUERIES=6000 MESSAGES=20000)
 */
import { PgClient } from "@effect/sql-pg"
import * as amqp from "amqplib"
import { type Job, Queue, Worker as BullMQWorker } from "bullmq"
import { Effect, Layer, References, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { Drain, Shutdown } from "winddown"
import { AmqpConsumer } from "winddown/amqp"
import { BullWorker } from "winddown/bullmq"

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const JOBS = Number(process.env.JOBS ?? 2000)
const QUERIES = Number(process.env.QUERIES ?? 6000)
const MESSAGES = Number(process.env.MESSAGES ?? 20000)
const ONLY = new Set((process.env.ONLY ?? "bullmq,pg,amqp").split(","))
const amqpUrl = "amqp://guest:guest@127.0.0.1:5672"
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

interface Sample {
  /** Units per second. */
  readonly rate: number
  /** This process's CPU time per unit, µs. */
  readonly cpuUs: number
}

const startClock = () => ({ at: nowMs(), cpu: process.cpuUsage() })
const sample = (start: ReturnType<typeof startClock>, units: number): Sample => {
  const cpu = process.cpuUsage(start.cpu)
  return { rate: units / ((nowMs() - start.at) / 1000), cpuUs: (cpu.user + cpu.system) / units }
}

/** Resolves once every job completed. */
const countCompletions = (worker: BullMQWorker, start: ReturnType<typeof startClock>) =>
  new Promise<Sample>((resolve) => {
    let done = 0
    worker.on("completed", () => {
      if (++done === JOBS) resolve(sample(start, JOBS))
    })
  })

const bullPlain = async () => {
  const { name, queue } = await freshQueue()
  const start = startClock()
  const worker = new BullMQWorker(name, async (job) => work(job.data.n), { connection, concurrency: CONCURRENCY })
  const rate = await countCompletions(worker, start)
  await worker.close()
  await queue.obliterate({ force: true })
  await queue.close()
  return rate
}

const bullEffect = async () => {
  const { name, queue } = await freshQueue()
  const start = startClock()
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
    const start = startClock()
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
    const start = startClock()
    yield* Effect.forEach(
      Array.from({ length: FIBERS }),
      () =>
        Effect.suspend(function loop(): Effect.Effect<void, unknown> {
          if (left-- <= 0) return Effect.void
          return Effect.flatMap(run(sql`SELECT 1`), loop)
        }),
      { concurrency: "unbounded", discard: true }
    )
    return sample(start, QUERIES)
  })

const poolPlain = () => quiet(queries((q) => q).pipe(Effect.provide(PgClient.layer(pg)), Effect.orDie))

const poolWinddown = () =>
  quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    // As in examples/07: the pool is released as the cleanup step "db pool".
    const context = yield* Layer.build(PgClient.layer(pg).pipe(Shutdown.releaseAs("db pool"))).pipe(
      Effect.provideService(Shutdown.Shutdown, shutdown)
    )
    const drain = yield* Drain.make("queries").pipe(Effect.provideService(Shutdown.Shutdown, shutdown))
    return yield* queries((q) => drain.runJoin(q)).pipe(Effect.provideContext(context))
  }).pipe(Effect.orDie))

// ---------------------------------------------------------------- RabbitMQ

const PREFETCH = 8

/** A fresh queue holding MESSAGES messages (published with confirms). */
const freshAmqpQueue = async () => {
  const queue = `winddown-bench-${process.pid}-${queueSeq++}`
  const connection = await amqp.connect(amqpUrl)
  const channel = await connection.createConfirmChannel()
  await channel.assertQueue(queue, { durable: false })
  for (let i = 0; i < MESSAGES; i++) channel.sendToQueue(queue, Buffer.from(String(i)))
  await channel.waitForConfirms()
  const remove = async () => {
    await channel.deleteQueue(queue)
    await connection.close()
  }
  return { queue, remove }
}

/** Consume the queue with a plain amqplib consumer whose callback hands each message to `handle`, which acks. */
const amqpPlainWith = (handle: (channel: amqp.Channel, message: amqp.ConsumeMessage, done: () => void) => void) => async () => {
  const { queue, remove } = await freshAmqpQueue()
  const connection = await amqp.connect(amqpUrl)
  const channel = await connection.createChannel()
  await channel.prefetch(PREFETCH)
  // Timed from the first delivery: connecting is not what is measured.
  let start: ReturnType<typeof startClock> | undefined
  const result = await new Promise<Sample>((resolve) => {
    let done = 0
    const finished = () => {
      if (++done === MESSAGES) resolve(sample(start!, MESSAGES))
    }
    void channel.consume(queue, (message) => {
      start ??= startClock()
      if (message) handle(channel, message, finished)
    })
  })
  await connection.close()
  await remove()
  return result
}

const amqpPlain = amqpPlainWith((channel, message, done) => {
  void (async () => work(Number(message.content.toString())))().then(() => {
    channel.ack(message)
    done()
  })
})

const amqpEffect = amqpPlainWith((channel, message, done) => {
  void Effect.runPromise(Effect.sync(() => work(Number(message.content.toString())))).then(() => {
    channel.ack(message)
    done()
  })
})

const amqpWinddown = async () => {
  const { queue, remove } = await freshAmqpQueue()
  const rate = await quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    let done = 0
    let finished!: (s: Sample) => void
    const all = new Promise<Sample>((resolve) => (finished = resolve))
    // Timed from the first delivery, as the others (connecting is not measured).
    let start: ReturnType<typeof startClock> | undefined
    yield* AmqpConsumer.make("bench", {
      connection: amqpUrl,
      queue,
      concurrency: PREFETCH,
      process: (message) =>
        Effect.sync(() => {
          start ??= startClock()
          work(Number(message.content.toString()))
          if (++done === MESSAGES) finished(sample(start, MESSAGES))
        })
    }).pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    return yield* Effect.promise(() => all)
  }))
  await remove()
  return rate
}

/**
 * CPU µs per message of AmqpConsumer's path alone: a stand-in connection
 * whose channel hands messages to the consumer's callback in waves of
 * PREFETCH and counts the acks; next to an Effect processor run with
 * `runPromise` and acked, the same way.
 */
const amqpPath = async () => {
  const units = 100_000
  let deliver: (message: amqp.ConsumeMessage | null) => void = () => {}
  let acked = 0
  let waveDone: (() => void) | undefined
  let waveTarget = 0
  const onAck = () => {
    if (++acked === waveTarget) waveDone?.()
  }
  const channel = {
    on: () => channel,
    prefetch: async () => ({}),
    consume: async (_: string, callback: (message: amqp.ConsumeMessage | null) => void) => {
      deliver = callback
      return { consumerTag: "bench" }
    },
    cancel: async () => ({ consumerTag: "bench" }),
    ack: onAck,
    nack: onAck,
    close: async () => {}
  }
  const connection = { createChannel: async () => channel, on: () => connection, once: () => connection, close: async () => {}, connection: {} }
  const message = (n: number) =>
    ({ content: Buffer.from(String(n)), fields: { deliveryTag: n }, properties: {} }) as unknown as amqp.ConsumeMessage
  const run = async (handle: (m: amqp.ConsumeMessage) => void) => {
    acked = 0
    const start = process.cpuUsage()
    for (let i = 0; i < units; i += PREFETCH) {
      waveTarget = i + PREFETCH
      const wave = new Promise<void>((resolve) => (waveDone = resolve))
      for (let k = 0; k < PREFETCH; k++) handle(message(i + k))
      await wave
    }
    const cpu = process.cpuUsage(start)
    return (cpu.user + cpu.system) / units
  }
  const plain = (m: amqp.ConsumeMessage) =>
    void Effect.runPromise(Effect.sync(() => work(Number(m.content.toString())))).then(() => channel.ack())
  const samples = { plain: [] as Array<number>, winddown: [] as Array<number> }
  await quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    yield* AmqpConsumer.make("path", {
      connection: connection as unknown as amqp.ChannelModel,
      queue: "path",
      concurrency: PREFETCH,
      process: (m) => Effect.sync(() => work(Number(m.content.toString())))
    }).pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    yield* Effect.promise(async () => {
      await run(plain)
      await run((m) => deliver(m))
      for (let round = 0; round < ROUNDS; round++) {
        samples.plain.push(await run(plain))
        samples.winddown.push(await run((m) => deliver(m)))
      }
    })
  }))
  const plainUs = median(samples.plain)
  const winddownUs = median(samples.winddown)
  console.log(`\nRabbitMQ consumer path without the broker: ${units.toLocaleString("en-US")} messages (median of ${ROUNDS})`)
  console.log(`  Effect processor via runPromise + ack ${plainUs.toFixed(2)} µs CPU per message`)
  console.log(
    `  winddown AmqpConsumer                 ${winddownUs.toFixed(2)} µs CPU per message: +${(winddownUs - plainUs).toFixed(2)} µs per message`
  )
}

// ---------------------------------------------------------------- run

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

const compare = async (
  title: string,
  unit: string,
  variants: ReadonlyArray<readonly [string, () => Promise<Sample>]>
) => {
  const samples = new Map(variants.map(([name]) => [name, [] as Array<Sample>]))
  for (const [, run] of variants) await run() // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate the order so that drift of the machine's load falls on both.
    const order = round % 2 === 0 ? variants : [...variants].reverse()
    for (const [name, run] of order) samples.get(name)!.push(await run())
  }
  const baseName = variants[variants.length - 2]![0]
  const base = samples.get(baseName)!
  const baseRate = median(base.map((s) => s.rate))
  const baseCpu = median(base.map((s) => s.cpuUs))
  const baseMinCpu = Math.min(...base.map((s) => s.cpuUs))
  console.log(`\n${title} (median of ${ROUNDS} alternating rounds; ratios against "${baseName}")`)
  for (const [name] of variants) {
    const xs = samples.get(name)!
    const rates = xs.map((s) => s.rate)
    const rate = median(rates)
    const cpus = xs.map((s) => s.cpuUs)
    const cpu = median(cpus)
    // The least disturbed round: on a loaded machine the minimum is the steadiest figure.
    const minCpu = Math.min(...cpus)
    console.log(
      `  ${name.padEnd(34)} ${fmt(rate).padStart(8)} ${unit} (${(rate / baseRate).toFixed(3)}; min ${fmt(Math.min(...rates))}, max ${
        fmt(Math.max(...rates))
      })   ${cpu.toFixed(1).padStart(6)} µs CPU each (${(cpu / baseCpu).toFixed(3)}), least ${minCpu.toFixed(1)} (${
        (minCpu / baseMinCpu).toFixed(3)
      })`
    )
  }
}

// ---------------------------------------------------------------- processor path

const PATH_JOBS = 100_000
const fakeJob = (n: number) => ({ id: String(n), data: { n }, progress: 0 }) as unknown as Job

/** CPU µs per job of `processor`, 8 jobs at a time like a worker of concurrency 8. */
const cpuPerJob = async (processor: (job: Job, token: string) => Promise<unknown>) => {
  const start = process.cpuUsage()
  for (let i = 0; i < PATH_JOBS; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, k) => processor(fakeJob(i + k), "token")))
  }
  const cpu = process.cpuUsage(start)
  return (cpu.user + cpu.system) / PATH_JOBS
}

const processorPath = async () => {
  const plain = (job: Job) => Effect.runPromise(Effect.sync(() => work(job.data.n)))
  const samples = { plain: [] as Array<number>, winddown: [] as Array<number> }
  await quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    const worker = yield* BullWorker.make("path", {
      queue: `winddown-bench-path-${process.pid}`,
      connection,
      concurrency: CONCURRENCY,
      process: (job) => Effect.sync(() => work(job.data.n))
    }).pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    // The processor BullMQ calls (a field BullMQ keeps to itself): the same function, without Redis around it.
    const processor = (worker.worker as unknown as { processFn: (job: Job, token: string) => Promise<unknown> }).processFn
    yield* Effect.promise(async () => {
      await cpuPerJob(plain)
      await cpuPerJob(processor)
      for (let round = 0; round < ROUNDS; round++) {
        samples.plain.push(await cpuPerJob(plain))
        samples.winddown.push(await cpuPerJob(processor))
      }
    })
  }))
  // The worker left its bookkeeping keys behind.
  const leftovers = new Queue(`winddown-bench-path-${process.pid}`, { connection })
  await leftovers.obliterate({ force: true })
  await leftovers.close()
  const plainUs = median(samples.plain)
  const winddownUs = median(samples.winddown)
  console.log(`\nBullMQ processor path without Redis: ${PATH_JOBS.toLocaleString("en-US")} jobs (median of ${ROUNDS})`)
  console.log(`  Effect processor via runPromise     ${plainUs.toFixed(2)} µs CPU per job`)
  console.log(
    `  winddown BullWorker processor       ${winddownUs.toFixed(2)} µs CPU per job: +${(winddownUs - plainUs).toFixed(2)} µs per job`
  )
}

/** CPU µs per query of the query path alone (`Effect.void` standing in for the query), 16 fibers. */
const queryPath = async () => {
  const units = 100_000
  const loop = (run: (q: Effect.Effect<void>) => Effect.Effect<unknown, unknown>) =>
    Effect.gen(function*() {
      let left = units
      const start = process.cpuUsage()
      yield* Effect.forEach(
        Array.from({ length: FIBERS }),
        () =>
          Effect.suspend(function next(): Effect.Effect<void, unknown> {
            if (left-- <= 0) return Effect.void
            return Effect.flatMap(run(Effect.void), next)
          }),
        { concurrency: "unbounded", discard: true }
      )
      const cpu = process.cpuUsage(start)
      return (cpu.user + cpu.system) / units
    })
  const samples = { plain: [] as Array<number>, winddown: [] as Array<number> }
  await quiet(Effect.gen(function*() {
    const shutdown = yield* Shutdown.make({ timeout: "30 seconds" })
    const drain = yield* Drain.make("path").pipe(Effect.provideService(Shutdown.Shutdown, shutdown), Effect.orDie)
    for (let round = -1; round < ROUNDS; round++) {
      const plain = yield* loop((q) => q)
      const winddown = yield* loop((q) => drain.runJoin(q))
      if (round >= 0) samples.plain.push(plain), samples.winddown.push(winddown)
    }
  }))
  const plainUs = median(samples.plain)
  const winddownUs = median(samples.winddown)
  console.log(`\nQuery path without PostgreSQL: ${units.toLocaleString("en-US")} units (median of ${ROUNDS})`)
  console.log(`  the query effect alone              ${plainUs.toFixed(2)} µs CPU per query`)
  console.log(
    `  through drain.runJoin               ${winddownUs.toFixed(2)} µs CPU per query: +${(winddownUs - plainUs).toFixed(2)} µs per query`
  )
}

const PATHS = ONLY.has("paths")
if (PATHS || ONLY.has("bullmq")) await processorPath()
if (PATHS || ONLY.has("pg")) await queryPath()
if (PATHS || ONLY.has("amqp")) await amqpPath()
if (ONLY.has("bullmq")) {
  await compare(`BullMQ: ${JOBS} jobs, concurrency ${CONCURRENCY}`, "jobs/s", [
    ["bullmq Worker, async processor", bullPlain],
    ["bullmq Worker, Effect processor", bullEffect],
    ["winddown BullWorker", bullWinddown]
  ])
}
if (ONLY.has("pg")) {
  await compare(`@effect/sql-pg: ${QUERIES} x SELECT 1, ${FIBERS} fibers, pool of ${pg.maxConnections}`, "queries/s", [
    ["PgClient pool", poolPlain],
    ["PgClient pool + drain.runJoin", poolWinddown]
  ])
}
if (ONLY.has("amqp")) {
  await compare(`RabbitMQ: ${MESSAGES} messages, prefetch ${PREFETCH}`, "msgs/s", [
    ["amqplib consumer, async callback", amqpPlain],
    ["amqplib consumer, Effect processor", amqpEffect],
    ["winddown AmqpConsumer", amqpWinddown]
  ])
}
