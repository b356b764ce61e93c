/**
 * A BullMQ worker under the shutdown: no job lost, none run twice on SIGTERM.
 *
 * BullMQ's own `worker.close()` waits for active jobs without any bound, and
 * `close(true)` leaves them active with their locks: they come back only
 * when the locks expire, through the stalled-job check, which runs them a
 * second time from the start (and fails them for good after
 * `maxStalledCount`, 1 by default). This module runs a BullMQ `Worker` whose
 * processor runs each job as a unit of a winddown {@link Drain}:
 *
 * - `stopAccepting`: the worker stops fetching: BullMQ's `close()` starts
 *   (it also cuts a blocking fetch in flight); its wait for active jobs is
 *   the drain's, and locks stay renewed meanwhile. BullMQ can still finish
 *   one fetch that was under way (its cut blocking wait returns into a fetch
 *   that does not check for closing): a job that arrives after the drain
 *   closed is handed straight back, unprocessed (`refused` in the report);
 * - `drain`: active jobs finish; at the soft deadline `process` sees
 *   `Drain.wrapUpRequested` and may checkpoint (`job.updateProgress`,
 *   `job.updateData`) and return {@link HandBack}; at the hard deadline (or a
 *   second signal) the job is interrupted. Either way the job goes back to the
 *   head of the wait list with BullMQ's lock token (`job.moveToWait`, then a
 *   `WaitingError` so BullMQ neither completes nor fails it): another worker
 *   picks it up at once and resumes from the checkpoint, and no lock is left
 *   to expire into a "stalled" re-run;
 * - `cleanup`: the close completes: BullMQ has marked the last jobs
 *   completed and closes the Redis connections it opened (bounded; past
 *   80 % of the cleanup allowance it disconnects).
 *
 * On SIGKILL nothing runs: BullMQ's stalled check brings the jobs back after
 * `lockDuration` (at least once; raise `maxStalledCount` so a job killed
 * twice is not failed).
 *
 * @since 0.1.0
 */
import { type ConnectionOptions, type Job, WaitingError, Worker as BullMQWorker, type WorkerOptions } from "bullmq"
import { Cause, Duration, Effect, Exit, type Scope } from "effect"
import * as Drain from "../Drain.ts"
import { holdScope } from "../internal/hold.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Resource from "../Resource.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as Worker from "../Worker.ts"

/**
 * What `process` returns to hand its job back (after checkpointing it)
 * instead of completing it. The same symbol as `Worker.Requeue`.
 *
 * @since 0.1.0
 * @category models
 */
export const HandBack: Worker.Requeue = Worker.Requeue

/**
 * Defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  concurrency: 1,
  startupTimeout: "5 seconds",
  handBackTimeout: "2 seconds"
} as const

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R> extends Pick<Drain.Options, "timeout" | "softTimeout" | "softRatio"> {
  /** The BullMQ queue name. */
  readonly queue: string
  /** How to reach Redis: options (the worker opens and closes its connections) or a client you own and close. */
  readonly connection: ConnectionOptions
  /**
   * Process one job. Its success value is the job's return value; return
   * {@link HandBack} to hand it back (after a checkpoint); a failure fails the
   * attempt as in BullMQ (retried per the job's `attempts`).
   */
  readonly process: (job: Job) => Effect.Effect<unknown, unknown, R>
  /** Jobs processed at once. Default 1. */
  readonly concurrency?: number | undefined
  /** The rest of BullMQ's worker options (`lockDuration`, `stalledInterval`, `maxStalledCount`, ...). */
  readonly workerOptions?: Omit<WorkerOptions, "connection" | "concurrency" | "autorun"> | undefined
  /** How long Redis may take to answer at startup. Default 5 s. */
  readonly startupTimeout?: Duration.Input | undefined
  /** The most a hand-back (`moveToWait`) may take before the job is left to BullMQ's stalled check. Default 2 s. */
  readonly handBackTimeout?: Duration.Input | undefined
}

/**
 * Why a job went back to the queue: `process` returned {@link HandBack}
 * (`requested`), it was interrupted at the hard deadline or by escalation
 * (`interrupted`), or it arrived after the drain closed (`refused`).
 *
 * @since 0.1.0
 * @category models
 */
export type HandBackReason = "requested" | "interrupted" | "refused"

/**
 * The counts of a worker, also its report section `bullmq <name>`.
 * `fetched = completed + failed + handedBack + handBackFailed + inFlight`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly fetched: number
  readonly completed: number
  readonly failed: number
  readonly handedBack: number
  readonly handedBackBy: Readonly<Record<HandBackReason, number>>
  /** Hand-backs that did not reach Redis in time: BullMQ's stalled check returns these jobs later. */
  readonly handBackFailed: number
  readonly inFlight: number
}

/**
 * A running worker.
 *
 * @since 0.1.0
 * @category models
 */
export interface BullWorker {
  readonly name: string
  /** The BullMQ worker itself (events, metrics). Do not close it: the shutdown does. */
  readonly worker: BullMQWorker
  readonly drain: Drain.Drain
  readonly statsUnsafe: () => Stats
}

/** `host:port` of the Redis the options point at, for messages. */
const addressOf = (connection: ConnectionOptions): string => {
  const c = connection as { readonly options?: { host?: string; port?: number }; host?: string; port?: number; url?: string }
  if (typeof c.url === "string") return c.url.replace(/\/\/[^@/]*@/, "//")
  const options = c.options ?? c
  return `${options.host ?? "127.0.0.1"}:${options.port ?? 6379}`
}

/**
 * Start a BullMQ worker in the current Shutdown: it registers
 * `<name>: stop fetching` in `stopAccepting`, a drain `<name>` in `drain`, and
 * `<name>: close worker` in `cleanup`, and reports a section `bullmq <name>`.
 * Fails with `Resource.Unavailable` (one line: Redis and its address) when
 * Redis does not answer at startup.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(
  name: string,
  options: Options<R>
): Effect.Effect<
  BullWorker,
  ShutdownConfigError | Drain.DrainError | Resource.Unavailable,
  Shutdown.Shutdown | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const { concurrency, handBackMs } = yield* OptionCheck.check(options, (c) => {
      c.name("queue", options.queue)
      c.func("process", options.process)
      c.duration("startupTimeout", options.startupTimeout ?? defaults.startupTimeout)
      return {
        concurrency: c.integer("concurrency", options.concurrency ?? defaults.concurrency, 1, Infinity)!,
        handBackMs: c.duration("handBackTimeout", options.handBackTimeout ?? defaults.handBackTimeout)!
      }
    })
    const shutdown = yield* Shutdown.Shutdown
    const drain = yield* Drain.make(name, {
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.softTimeout === undefined ? {} : { softTimeout: options.softTimeout }),
      ...(options.softRatio === undefined ? {} : { softRatio: options.softRatio }),
      section: false
    })
    const context = yield* Effect.context<R>()
    const runFork = Effect.runForkWith(context)
    const runCallback = <A, E>(effect: Effect.Effect<A, E, R>, onExit: (exit: Exit.Exit<A, E>) => void) =>
      runFork(effect).addObserver(onExit)

    const counts = { fetched: 0, completed: 0, failed: 0, handedBack: 0, handBackFailed: 0 }
    const handedBackBy: Record<HandBackReason, number> = { requested: 0, interrupted: 0, refused: 0 }
    const statsUnsafe = (): Stats => ({
      ...counts,
      handedBackBy: { ...handedBackBy },
      inFlight: counts.fetched - counts.completed - counts.failed - counts.handedBack - counts.handBackFailed
    })

    // Back to the head of the wait list, under the lock we hold; then BullMQ
    // is told (WaitingError) that the job is no longer ours to finish.
    const handBack = (job: Job, token: string, reason: HandBackReason) =>
      Effect.tryPromise(() => job.moveToWait(token)).pipe(
        Effect.timeoutOrElse({
          duration: handBackMs,
          orElse: () => Effect.fail(new Error(`no answer from Redis within ${handBackMs} ms`))
        }),
        Effect.matchCauseEffect({
          onSuccess: () =>
            Effect.sync(() => {
              counts.handedBack++
              handedBackBy[reason]++
            }),
          onFailure: (cause) =>
            Effect.andThen(
              Effect.sync(() => void counts.handBackFailed++),
              Effect.logWarning(
                `[winddown] bullmq ${JSON.stringify(name)}: could not hand job ${job.id} back (${reason}); ` +
                  `BullMQ's stalled check will return it`,
                { cause: Cause.pretty(cause).split("\n")[0] }
              )
            )
        }),
        Effect.andThen(Effect.fail(new WaitingError(`winddown: job ${job.id} handed back (${reason})`)))
      )

    // One job as a unit of the drain: only `process` is interruptible; the
    // hand-back runs whatever happens to the unit.
    const unit = (job: Job, token: string) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(options.process(job))), (exit): Effect.Effect<unknown, unknown> => {
          if (Exit.isSuccess(exit)) {
            if (exit.value === HandBack) return handBack(job, token, "requested")
            counts.completed++
            return Effect.succeed(exit.value)
          }
          if (Cause.hasInterruptsOnly(exit.cause)) return handBack(job, token, "interrupted")
          counts.failed++
          return Effect.failCause(exit.cause)
        })
      )

    // BullMQ awaits the returned promise. It is settled by an observer of the
    // unit's own fiber, not by a fiber joining it: one scheduler hop fewer
    // per job. A failure is settled as an Error (BullMQ records messages).
    const settle = (resolve: (a: unknown) => void, reject: (e: unknown) => void) =>
    (exit: Exit.Exit<unknown, unknown>) => {
      if (Exit.isSuccess(exit)) return resolve(exit.value)
      const error = Cause.squash(exit.cause)
      reject(error instanceof Error ? error : new Error(String(error)))
    }
    const processor = (job: Job, token?: string): Promise<unknown> => {
      counts.fetched++
      if (token === undefined) {
        counts.failed++
        return Promise.reject(new Error("winddown: BullMQ gave no lock token"))
      }
      return new Promise((resolve, reject) => {
        const done = settle(resolve, reject)
        const started = drain.runUnsafe(unit(job, token), context)
        if (started instanceof Drain.Refused) return runCallback(handBack(job, token, "refused"), done)
        // Called at once when the unit already ended.
        started.addObserver(done)
      })
    }

    const worker = new BullMQWorker(options.queue, processor, {
      ...options.workerOptions,
      connection: options.connection,
      concurrency,
      autorun: false
    })
    // BullMQ emits connection errors as events; without a listener Node
    // would throw them. Logged once per message while running.
    let lastError: unknown
    let lastLogged: string | undefined
    worker.on("error", (error) => {
      lastError = error
      const message = error instanceof Error ? error.message : String(error)
      if (message !== lastLogged) {
        lastLogged = message
        Effect.runFork(Effect.logWarning(`[winddown] bullmq ${JSON.stringify(name)}: ${message}`))
      }
    })

    // BullMQ's close() stops fetching at once (it also cuts a blocking fetch
    // in flight, so no job arrives after it) and then waits for the active
    // jobs: started in stopAccepting, awaited in cleanup, after the drain.
    // Locks stay renewed until then.
    let closing: Promise<void> | undefined
    const startClose = Effect.sync(() => void (closing ??= worker.close()))
    const closeWithinMs = Math.max(100, shutdown.budget.phasesMs.cleanup * 0.8)
    // The step fails (and the report says why) when Redis let us down: a job
    // that could not be handed back, or a close that had to be cut short.
    const awaitClose = Effect.andThen(startClose, Effect.promise(() => closing!)).pipe(
      Effect.as(true),
      Effect.timeoutOrElse({
        duration: Duration.millis(closeWithinMs),
        orElse: () => Effect.as(Effect.promise(() => worker.disconnect()), false)
      }),
      Effect.flatMap((closed) => {
        const problems = [
          ...(closed ? [] : [`the close did not finish within ${Math.round(closeWithinMs)} ms: disconnected`]),
          ...(counts.handBackFailed === 0 ? [] : [
            `${counts.handBackFailed} job(s) could not be handed back; BullMQ's stalled check returns them after lockDuration`
          ])
        ]
        return problems.length === 0 ? Effect.void : Effect.fail(new Error(problems.join("; ")))
      })
    )
    // Redis must answer before anything starts: the first connection error
    // (ECONNREFUSED ...) is the message.
    yield* Resource.check(
      "Redis",
      addressOf(options.connection),
      Effect.callback<void, unknown>((resume) => {
        if (lastError !== undefined) return resume(Effect.fail(lastError))
        const onError = (error: unknown) => resume(Effect.fail(error))
        worker.once("error", onError)
        worker.waitUntilReady().then(
          () => resume(Effect.void),
          (error: unknown) => resume(Effect.fail(error))
        )
        return Effect.sync(() => void worker.off("error", onError))
      }),
      { timeout: options.startupTimeout ?? defaults.startupTimeout }
    ).pipe(Effect.onError(() => Effect.promise(() => worker.close(true))))

    yield* shutdown.addSection(`bullmq ${name}`, () => ({ ...statsUnsafe() }))
    yield* shutdown.addProgress(`bullmq ${name}`, () => {
      const { inFlight } = statsUnsafe()
      return inFlight === 0 ? undefined : `${inFlight} job${inFlight === 1 ? "" : "s"} active`
    })
    yield* shutdown.addStep(`${name}: stop fetching`, startClose, { phase: "stopAccepting" })
    yield* shutdown.addStep(`${name}: close worker`, awaitClose, { phase: "cleanup" })
    // Torn down before any shutdown: stop fetching, let the drain close (its
    // own finalizer), then close the worker. During a shutdown the phases do it.
    yield* holdScope(
      shutdown,
      Effect.void,
      Effect.andThen(startClose, Effect.andThen(drain.close(), awaitClose)).pipe(
        Effect.catch((error) => Effect.logWarning(`[winddown] bullmq ${JSON.stringify(name)}: ${error.message}`))
      )
    )
    worker.run().catch((error: unknown) =>
      Effect.runFork(Effect.logError(`[winddown] bullmq ${JSON.stringify(name)}: worker stopped`, { error }))
    )
    return { name, worker, drain, statsUnsafe } satisfies BullWorker
  })

/**
 * Save a checkpoint of the job in Redis: its progress (what a resumed run
 * reads back from `job.progress`).
 *
 * @since 0.1.0
 * @category combinators
 */
export const checkpoint = (job: Job, progress: number | object): Effect.Effect<void, unknown> =>
  Effect.tryPromise(() => job.updateProgress(progress))
