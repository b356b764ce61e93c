/**
 * Jobs of the demo: what a job is, the interface the API and the worker use
 * ({@link Jobs}), and its embedded implementation ({@link make}) over the
 * journal.
 *
 * Embedded, a job's state is whatever the journal says, so a restart (after
 * SIGTERM or SIGKILL) rebuilds it exactly. A job runs in 50 ms slices; asked
 * to wrap up (the drain's soft deadline) or interrupted (its hard deadline),
 * it writes a checkpoint and goes back to pending, to resume after the
 * restart. Its completion is one durable line written once, so a job that got
 * a 202 completes exactly once across SIGTERM restarts (at least once across
 * SIGKILL: a kill between the work and that line repeats it).
 *
 * With `DATABASE_URL` the same interface is implemented over a table that
 * every replica shares (`PgJobs.ts`).
 */
import { Effect, Queue } from "effect"
import { Drain, Worker } from "winddown"
import type { Entry, JobStore, JobStoreError } from "./JobStore.ts"

export type State = "pending" | "running" | "done"

export interface Job {
  readonly id: string
  readonly ms: number
  state: State
  progressMs: number
  runs: number
  completions: number
  result: string | undefined
  readonly acceptedAt: number
}

/** A job as `GET /jobs/:id` shows it. */
export interface JobView {
  readonly state: State
  readonly ms: number
  readonly progressMs: number
  readonly result: string | undefined
  readonly runs: number
  readonly completions: number
  /** PostgreSQL mode: who ran it, from where, and how each run ended. */
  readonly history?: ReadonlyArray<unknown>
}

/**
 * What the API and the worker need from wherever the jobs live. `Claim` is
 * what the worker holds while it runs a job: an id in memory, a claim with a
 * lease in a shared table.
 */
export interface Jobs<Claim> {
  /** What and where, for log lines: `journal /data/journal.jsonl`. */
  readonly description: string
  readonly get: (id: string) => Effect.Effect<JobView | undefined, JobStoreError>
  /**
   * Record the job durably and make it available to the workers; fails
   * (nothing promised) when the store cannot record it.
   */
  readonly accept: (ms: number) => Effect.Effect<{ readonly id: string }, JobStoreError>
  readonly counts: Effect.Effect<Record<State, number>, JobStoreError>
  /** The worker's `take`: waits for the next job this process may run. */
  readonly take: Effect.Effect<Claim>
  /** The worker's unit of work; returns Worker.Requeue when it checkpointed instead of finishing. */
  readonly run: (claim: Claim) => Effect.Effect<void | Worker.Requeue>
  /** The worker's `requeue`: hand back a job it took but did not finish. Never fails. */
  readonly requeue: (claim: Claim, reason: Worker.RequeueReason) => Effect.Effect<void>
}

/** Jobs run in slices this long: how often they look at the wrap-up request, the granularity of checkpoints. */
export const slice = 50

const pendingJob = (id: string, ms: number, acceptedAt: number): Job => ({
  id, ms, state: "pending", progressMs: 0, runs: 0, completions: 0, result: undefined, acceptedAt
})

/** Fold the journal into job states. A job "running" when the process died is pending again. */
export const replay = (entries: ReadonlyArray<Entry>): Map<string, Job> => {
  const jobs = new Map<string, Job>()
  for (const e of entries) {
    if (e.t === "accepted") {
      jobs.set(e.id, pendingJob(e.id, e.ms, e.at))
      continue
    }
    const job = jobs.get(e.id)
    if (job === undefined) continue
    if (e.t === "started") {
      job.runs++
      job.state = job.state === "done" ? "done" : "running"
    } else if (e.t === "checkpointed") {
      job.progressMs = Math.min(e.progressMs, job.ms)
      if (job.state !== "done") job.state = "pending"
    } else {
      job.completions++
      job.state = "done"
      job.result = e.result
      job.progressMs = job.ms
    }
  }
  for (const job of jobs.values()) if (job.state === "running") job.state = "pending"
  return jobs
}

let sequence = 0
const newId = () => `${Date.now().toString(36)}-${process.pid.toString(36)}-${(sequence++).toString(36)}`

/**
 * A line the worker writes about a job it already holds. When it cannot be
 * recorded (disk full) the work goes on: the job's acceptance is on disk, so
 * the worst case is running it again after a restart.
 */
const note = (store: JobStore, entry: Entry) =>
  store.append(entry).pipe(
    Effect.catch((e) => Effect.logWarning(`[demo] job ${entry.id}: could not record "${entry.t}" (${e.message}); it may run again after a restart`))
  )

/** The embedded jobs: state from the journal, pending ids in an in-memory queue. */
export const make = (store: JobStore): Effect.Effect<Jobs<string>> =>
  Effect.map(Queue.unbounded<string>(), (queue) => {
    const jobs = replay(store.entries)
    const pending = [...jobs.values()].filter((j) => j.state === "pending").sort((a, b) => a.acceptedAt - b.acceptedAt)
    for (const job of pending) Queue.offerUnsafe(queue, job.id)
    return fromJournal(store, jobs, queue)
  })

const fromJournal = (store: JobStore, jobs: Map<string, Job>, queue: Queue.Queue<string>): Jobs<string> => {
  const run = (id: string) =>
    Effect.suspend(() => {
      const job = jobs.get(id)
      if (job === undefined || job.state !== "pending") return Effect.void
      job.state = "running"
      job.runs++
      let finished = false
      const checkpoint = Effect.suspend(() => {
        if (finished) return Effect.void
        finished = true
        job.state = "pending"
        return note(store, { t: "checkpointed", id, progressMs: job.progressMs })
      })
      const work = Effect.gen(function*() {
        yield* note(store, { t: "started", id, run: job.runs, progressMs: job.progressMs })
        const wrapUp = yield* Drain.WrapUp
        while (job.progressMs < job.ms) {
          if (wrapUp.isRequestedUnsafe()) {
            yield* checkpoint
            return Worker.Requeue
          }
          const step = Math.min(slice, job.ms - job.progressMs)
          yield* Effect.sleep(step)
          job.progressMs += step
        }
        // The completion is one durable line, written once, not interruptible.
        yield* Effect.uninterruptible(Effect.suspend(() => {
          finished = true
          job.state = "done"
          job.completions++
          job.result = `worked ${job.ms} ms`
          return note(store, { t: "completed", id, result: job.result, at: Date.now() })
        }))
      })
      return work.pipe(Effect.onInterrupt(() => checkpoint))
    })
  return {
    description: store.description,
    get: (id) => Effect.sync(() => jobs.get(id)),
    accept: (ms) =>
      Effect.suspend(() => {
        const job = pendingJob(newId(), ms, Date.now())
        return store.append({ t: "accepted", id: job.id, ms, at: job.acceptedAt }).pipe(
          Effect.map(() => {
            jobs.set(job.id, job)
            Queue.offerUnsafe(queue, job.id)
            return { id: job.id }
          })
        )
      }),
    counts: Effect.sync(() => {
      const counts = { pending: 0, running: 0, done: 0 }
      for (const job of jobs.values()) counts[job.state]++
      return counts
    }),
    take: Queue.take(queue),
    run,
    // The journal already holds the checkpoint; in memory, the job waits in the queue.
    requeue: (id) => Effect.asVoid(Queue.offer(queue, id))
  }
}
