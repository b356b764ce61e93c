/**
 * 06b worker queue in memory, no server needed (06 is the same on a real
 * Redis queue with BullMQ): a producer enqueues a
 * task every 300 ms, four workers process them (0.5–4 s each), a metrics task
 * repeats every 2 s. Press Ctrl+C (or `kill -TERM <pid>`):
 *
 * - `stopAccepting`: the producer and the workers stop taking; the metrics
 *   loop stops at its next iteration boundary;
 * - `drain`: tasks in hand finish; at the soft deadline the long ones
 *   checkpoint and are handed back; what is left at the hard deadline is
 *   interrupted and handed back too;
 * - `cleanup`: whatever is still queued is persisted (here: printed).
 *
 * A second Ctrl+C interrupts the tasks in hand at once (their checkpoints
 * still run). The report at the end counts every task.
 *
 *   node --import tsx examples/06b_worker_queue_memory.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Option, Queue, Schedule } from "effect"
import { Drain, Shutdown, Worker } from "winddown"
import { NodeShutdown } from "winddown/node"

interface Task {
  readonly id: number
  readonly ms: number
}

const program = Effect.gen(function*() {
  const tasks = yield* Queue.unbounded<Task>()
  const persisted: Array<Task> = []

  // Each task works in 250 ms chunks and checkpoints when asked to wrap up.
  const process = (task: Task) =>
    Effect.gen(function*() {
      let done = 0
      while (done < task.ms) {
        if (yield* Drain.isWrapUpRequested) {
          yield* Effect.log(`task ${task.id}: wrap-up requested at ${done}/${task.ms} ms, checkpointing`)
          return Worker.Requeue
        }
        yield* Effect.sleep(Math.min(250, task.ms - done))
        done += 250
      }
      yield* Effect.log(`task ${task.id}: done (${task.ms} ms)`)
    }).pipe(Effect.onInterrupt(() => Effect.log(`task ${task.id}: interrupted, checkpoint saved`)))

  yield* Worker.make("tasks", {
    take: tasks,
    concurrency: 4,
    process,
    // In production: nack the message, or write it back to a durable queue.
    requeue: (task, reason) =>
      Effect.sync(() => void persisted.push(task)).pipe(Effect.andThen(Effect.log(`task ${task.id}: handed back (${reason})`)))
  })

  // The producer: a repeating task too, so it stops enqueueing at stopAccepting.
  let next = 1
  yield* Worker.repeat(
    "producer",
    Effect.suspend(() => Queue.offer(tasks, { id: next++, ms: 500 + Math.floor(Math.random() * 3500) })),
    { schedule: Schedule.spaced("300 millis") }
  )
  yield* Worker.repeat(
    "metrics",
    Effect.flatMap(Queue.size(tasks), (n) => Effect.log(`metrics: ${n} queued`)),
    { schedule: Schedule.spaced("2 seconds") }
  )

  // Cleanup runs after the drain: persist what no worker took.
  yield* Shutdown.addStep(
    "persist queue",
    Effect.gen(function*() {
      while (true) {
        const task = yield* Queue.poll(tasks)
        if (Option.isNone(task)) break
        persisted.push(task.value)
      }
      yield* Effect.log(`persisted ${persisted.length} tasks for the next start: ${persisted.map((t) => t.id).join(", ")}`)
    })
  )

  yield* Effect.log(`pid ${globalThis.process.pid}: stop with Ctrl+C or kill -TERM ${globalThis.process.pid} (twice to force)`)
  return yield* Effect.never
})

NodeRuntime.runMain(
  program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "5 seconds", preStop: "0 seconds", reportJson: true })))
)
