/**
 * 06 worker queue on a real Redis with BullMQ (06b is the same in memory,
 * with no server): a producer adds a job every 300 ms, a worker processes
 * four at a time (0.5–4 s each, in 250 ms chunks it can resume from), a
 * metrics task repeats every 2 s. Press Ctrl+C (or `kill -TERM <pid>`):
 *
 * - `stopAccepting`: the producer stops adding, the worker stops fetching,
 *   the metrics loop stops at its next iteration boundary;
 * - `drain`: jobs in hand finish; at the soft deadline the long ones save
 *   their progress in Redis (`job.updateProgress`) and are handed back to
 *   the head of the queue; one still running at the hard deadline is
 *   interrupted and handed back too: never left locked, so BullMQ's stalled
 *   check never runs it a second time;
 * - `cleanup`: the worker and the producer's queue close their Redis
 *   connections. What is left waits in Redis: start the example again and it
 *   resumes those jobs from their checkpoints.
 *
 * A second Ctrl+C interrupts the jobs in hand at once (they are still handed
 * back). The report at the end counts every job. Needs Redis on 127.0.0.1:6379
 * (`REDIS_PORT`, `QUEUE` to change):
 *
 *   redis-server --daemonize yes            (if it is not running)
 *   node --import tsx examples/06_worker_queue.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { type Job, Queue } from "bullmq"
import { Effect, Schedule } from "effect"
import { Drain, Shutdown, Worker } from "winddown"
import { BullWorker } from "winddown/bullmq"
import { NodeShutdown } from "winddown/node"

const connection = { host: "127.0.0.1", port: Number(process.env.REDIS_PORT ?? 6379), maxRetriesPerRequest: null }
const queueName = process.env.QUEUE ?? "winddown-example-06"

const program = Effect.gen(function*() {
  // Each job works in 250 ms chunks from its checkpoint and saves progress when asked to wrap up.
  const process = (job: Job<{ readonly ms: number }>) =>
    Effect.gen(function*() {
      let done = typeof job.progress === "number" ? job.progress : 0
      if (done > 0) yield* Effect.log(`job ${job.id}: resuming at ${done}/${job.data.ms} ms`)
      while (done < job.data.ms) {
        if (yield* Drain.isWrapUpRequested) {
          yield* BullWorker.checkpoint(job, done)
          yield* Effect.log(`job ${job.id}: wrap-up requested at ${done}/${job.data.ms} ms, checkpoint saved, handed back`)
          return BullWorker.HandBack
        }
        yield* Effect.sleep(Math.min(250, job.data.ms - done))
        done = Math.min(job.data.ms, done + 250)
      }
      yield* Effect.log(`job ${job.id}: done (${job.data.ms} ms)`)
    }).pipe(Effect.onInterrupt(() => Effect.log(`job ${job.id}: interrupted, handed back`)))

  // Fails at startup with one line if Redis does not answer.
  yield* BullWorker.make("jobs", { queue: queueName, connection, concurrency: 4, process })

  // The producer's own connection, closed in cleanup, after the drain.
  const queue = yield* Shutdown.acquireRelease(
    "close producer queue",
    Effect.sync(() => new Queue(queueName, { connection })),
    (queue) =>
      Effect.promise(async () => {
        const waiting = await queue.getWaitingCount()
        await queue.close()
        return waiting
      }).pipe(Effect.flatMap((waiting) => Effect.log(`${waiting} jobs wait in Redis for the next start`)))
  )
  // A repeating task too, so it stops adding at stopAccepting.
  yield* Worker.repeat(
    "producer",
    Effect.promise(() => queue.add("work", { ms: 500 + Math.floor(Math.random() * 3500) })),
    { schedule: Schedule.spaced("300 millis") }
  )
  yield* Worker.repeat(
    "metrics",
    Effect.promise(() => queue.getJobCounts("waiting", "active", "completed")).pipe(
      Effect.flatMap((c) => Effect.log(`metrics: ${c.waiting} waiting, ${c.active} active, ${c.completed} completed`))
    ),
    { schedule: Schedule.spaced("2 seconds") }
  )

  yield* Effect.log(`pid ${globalThis.process.pid}: stop with Ctrl+C or kill -TERM ${globalThis.process.pid} (twice to force)`)
  return yield* Effect.never
})

NodeRuntime.runMain(
  program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "5 seconds", preStop: "0 seconds", reportJson: true })))
)
