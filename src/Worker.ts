/**
 * Background workers under the shutdown: queue consumers and repeating tasks.
 *
 * {@link make} runs a consumer loop: it takes items from an Effect `Queue` (or
 * any `take` effect), processes them with bounded concurrency as units of a
 * {@link Drain}, stops taking when the `stopAccepting` phase starts, lets the
 * items in hand finish (or checkpoint at the soft deadline) during `drain`, and
 * hands every item it took but did not finish to `requeue` (by default: back
 * into the queue). It never takes more items than it can start, so whatever
 * it did not take stays in the queue; no item is lost and the helper itself
 * never processes an item twice.
 *
 * {@link repeat} runs a task on a `Schedule` and stops it at the next
 * iteration boundary: an iteration in progress is drained like any unit, no
 * new one starts.
 *
 * @since 0.1.0
 */
import { Cause, Deferred, Effect, Exit, Fiber, Queue, type Schedule, type Scope } from "effect"
import * as Drain from "./Drain.ts"
import { holdScope } from "./internal/hold.ts"
import * as Log from "./internal/log.ts"
import * as OptionCheck from "./internal/options.ts"
import { describeCause } from "./internal/runStep.ts"
import type * as Phase from "./Phase.ts"
import * as Shutdown from "./Shutdown.ts"
import type { ShutdownConfigError } from "./ShutdownConfig.ts"

/**
 * Defaults of {@link Options} and {@link RepeatOptions} (drain timings:
 * `Drain.defaults`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  concurrency: 1,
  stopPhase: "stopAccepting"
} as const

/**
 * What `process` returns to hand its item back (after checkpointing, say)
 * instead of counting it completed.
 *
 * @since 0.1.0
 * @category models
 */
export const Requeue: unique symbol = Symbol.for("winddown/Worker/Requeue")

/**
 * The type of {@link Requeue}.
 *
 * @since 0.1.0
 * @category models
 */
export type Requeue = typeof Requeue

/**
 * Why an item went back: its processing was interrupted (hard deadline,
 * escalation), `process` returned {@link Requeue}, or the drain refused it
 * (it was taken as the shutdown was forced).
 *
 * @since 0.1.0
 * @category models
 */
export type RequeueReason = "interrupted" | "requested" | "refused"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<A, R> extends Pick<Drain.Options, "timeout" | "softTimeout" | "softRatio"> {
  /** Where items come from: a Queue, or any effect that waits for the next item (and is safe to interrupt while waiting). */
  readonly take: Queue.Dequeue<A, any> | Effect.Effect<A, unknown, R>
  /**
   * Process one item. Return {@link Requeue} to hand it back. Failures are
   * counted and logged, not retried (retrying is the caller's policy).
   */
  readonly process: (item: A) => Effect.Effect<unknown, unknown, R>
  /**
   * Hand back an item taken but not finished. Default for a Queue: offer it
   * back into the queue (required for a `take` effect and for sliding queues,
   * where a re-offer would evict another item). Keep it quick: it runs while
   * the shutdown waits.
   */
  readonly requeue?: ((item: A, reason: RequeueReason) => Effect.Effect<unknown, unknown, R>) | undefined
  /** Items processed at the same time. Default 1. */
  readonly concurrency?: number | undefined
}

/**
 * The counts of a worker. `taken = completed + failed + requeued +
 * requeueFailed + inFlight`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly state: "running" | "stopped"
  readonly taken: number
  readonly completed: number
  readonly failed: number
  readonly requeued: number
  /** Items `requeue` failed to hand back (logged with the item): the only way to lose one. */
  readonly requeueFailed: number
  readonly inFlight: number
  /** Items that ended (completed or requeued) after the wrap-up request. */
  readonly wrappedUp: number
  /** Items whose processing was interrupted (and then requeued). */
  readonly interrupted: number
  /** Why the worker stopped taking: the shutdown, `stop`, its Scope, or `take` failing (e.g. the queue ended). */
  readonly stoppedBy?: "shutdown" | "stop" | "scope" | "takeFailed"
  readonly takeFailure?: string
}

/**
 * A running worker.
 *
 * @since 0.1.0
 * @category models
 */
export interface Worker {
  readonly name: string
  /** The drain its items run in (read `wrapUpRequested`, `stats`). */
  readonly drain: Drain.Drain
  /** Stop taking new items now; items in hand continue. Idempotent. */
  readonly stop: Effect.Effect<void>
  /** Completes once the worker stopped taking. */
  readonly awaitStopped: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
  readonly statsUnsafe: () => Stats
}

/** The drain timings a worker passes on to its drain; the worker reports its own section. */
const drainOptions = (options: Pick<Drain.Options, "timeout" | "softTimeout" | "softRatio">): Drain.Options => ({
  ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
  ...(options.softTimeout === undefined ? {} : { softTimeout: options.softTimeout }),
  ...(options.softRatio === undefined ? {} : { softRatio: options.softRatio }),
  section: false
})

/**
 * Start a consumer loop in the current Shutdown. It registers a step
 * `<name>: stop taking` in `stopAccepting` and a drain `<name>` in `drain`,
 * and reports a section `worker <name>`.
 *
 * Concurrency is a number of slots; each slot takes an item only when it is
 * free, so no item waits in the worker's hands. If the Scope closes before
 * any shutdown, the worker stops and drains then.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <A, R = never>(
  name: string,
  options: Options<A, R>
): Effect.Effect<Worker, Drain.DrainError | ShutdownConfigError, Shutdown.Shutdown | Scope.Scope | R> =>
  Effect.gen(function*() {
    const source = options.take
    const isQueue = Queue.isDequeue(source)
    const concurrency = yield* OptionCheck.check(options, (c) => {
      c.name("name", name)
      c.func("process", options.process)
      if (!isQueue && !Effect.isEffect(source)) c.refuse("take", source, "a Queue or an Effect")
      if (options.requeue !== undefined) c.func("requeue", options.requeue)
      else if (!isQueue || !Queue.isEnqueue(source)) {
        c.refuse("requeue", undefined, "a function when take is not a Queue the worker can offer back to")
      } else if (source.strategy === "sliding") {
        c.refuse("requeue", undefined, "a function for a sliding queue: offering back would evict another item")
      }
      return c.integer("concurrency", options.concurrency ?? defaults.concurrency, 1, Infinity)!
    })
    let requeue = options.requeue
    if (requeue === undefined) {
      const queue = source as unknown as Queue.Queue<A, any>
      requeue = (item) =>
        Effect.suspend(() =>
          Queue.offerUnsafe(queue, item) ? Effect.void : Effect.fail(new Error("the queue is full or done"))
        )
    }
    const giveBackTo = requeue
    const takeItem: Effect.Effect<A, unknown, R> = isQueue ? Queue.take(source) : source
    const shutdown = yield* Shutdown.Shutdown
    const drain = yield* Drain.make(name, {
      ...drainOptions(options),
      // The drain step's span gets the worker's own counts: what it handed back.
      spanAttributes: () => ({
        "winddown.worker.taken": counts.taken,
        "winddown.worker.completed": counts.completed,
        "winddown.worker.requeued": counts.requeued,
        "winddown.worker.requeue_failed": counts.requeueFailed
      })
    })

    const counts = { taken: 0, completed: 0, failed: 0, requeued: 0, requeueFailed: 0, wrappedUp: 0, interrupted: 0 }
    let stoppedBy: Stats["stoppedBy"]
    let takeFailure: string | undefined
    const stopped = Deferred.makeUnsafe<void>()
    const statsUnsafe = (): Stats => {
      const { taken, completed, failed, requeued, requeueFailed } = counts
      return {
        name,
        state: stoppedBy === undefined ? "running" : "stopped",
        ...counts,
        inFlight: taken - completed - failed - requeued - requeueFailed,
        ...(stoppedBy === undefined ? {} : { stoppedBy }),
        ...(takeFailure === undefined ? {} : { takeFailure })
      }
    }

    const giveBack = (item: A, reason: RequeueReason) =>
      giveBackTo(item, reason).pipe(
        Effect.matchCauseEffect({
          onSuccess: () => Effect.sync(() => void counts.requeued++),
          onFailure: (cause) =>
            Effect.andThen(
              Effect.sync(() => void counts.requeueFailed++),
              Log.withFields(
                Effect.logError(`[winddown] worker ${JSON.stringify(name)}: requeue (${reason}) failed, item lost`, {
                  item,
                  cause: describeCause(cause)
                }),
                () => ({ "winddown.worker": name, "winddown.requeue_reason": reason, "winddown.cause": describeCause(cause) })
              )
            )
        })
      )

    // One item, as a unit of the drain. Only `process` is interruptible: the
    // accounting and the hand-back run whatever happens to the unit.
    const handle = (item: A) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(options.process(item))), (exit) =>
          Effect.flatMap(Drain.isWrapUpRequested, (late) => {
            if (Exit.isSuccess(exit)) {
              if (late) counts.wrappedUp++
              if (exit.value === Requeue) return giveBack(item, "requested")
              counts.completed++
              return Effect.void
            }
            if (Cause.hasInterruptsOnly(exit.cause)) {
              counts.interrupted++
              return giveBack(item, "interrupted")
            }
            if (late) counts.wrappedUp++
            counts.failed++
            return Log.withFields(
              Effect.logWarning(`[winddown] worker ${JSON.stringify(name)}: process failed`, {
                item,
                cause: describeCause(exit.cause)
              }),
              () => ({ "winddown.worker": name, "winddown.cause": describeCause(exit.cause) })
            )
          })
        )
      )

    // A slot: take one item, start it, wait for it, again. The take is the
    // only interruptible part besides the wait: an item once taken is always
    // started in the drain or handed back. A slot never takes for a drain
    // that stopped accepting (escalation can close it before the stop step).
    const slot = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        while (drain.isAcceptingUnsafe() && !shutdown.isForcedUnsafe()) {
          const item = yield* restore(takeItem).pipe(
            Effect.tapCause((cause) =>
              Cause.hasInterruptsOnly(cause) || Cause.isDone(Cause.squash(cause))
                ? Effect.void
                : Log.withFields(
                  Effect.logWarning(`[winddown] worker ${JSON.stringify(name)}: take failed, slot ends`, {
                    cause: describeCause(cause)
                  }),
                  () => ({ "winddown.worker": name, "winddown.cause": describeCause(cause) })
                )
            )
          )
          counts.taken++
          const started = yield* Effect.result(drain.run(handle(item)))
          if (started._tag === "Failure") {
            yield* giveBack(item, "refused")
            break
          }
          yield* restore(Fiber.await(started.success))
        }
        if (stoppedBy === undefined) stoppedBy = shutdown.isShuttingDownUnsafe() ? "shutdown" : "scope"
      })
    )
    const slots: Array<Fiber.Fiber<void, unknown>> = []
    for (let i = 0; i < concurrency; i++) slots.push(yield* Effect.forkDetach(slot))

    const stopWith = (by: NonNullable<Stats["stoppedBy"]>) =>
      Effect.suspend(() => {
        if (stoppedBy === undefined) stoppedBy = by
        return Effect.andThen(Fiber.interruptAll(slots), Deferred.succeed(stopped, undefined))
      })
    // Slots end by themselves when `take` fails (the queue ended or failed).
    yield* Effect.forkDetach(Effect.gen(function*() {
      const exits = yield* Fiber.awaitAll(slots)
      const failure = exits.find((e) => Exit.isFailure(e) && !Cause.hasInterruptsOnly(e.cause))
      if (failure !== undefined && Exit.isFailure(failure)) {
        if (stoppedBy === undefined) stoppedBy = "takeFailed"
        const done = Cause.squash(failure.cause)
        takeFailure = Cause.isDone(done) ? "done" : describeCause(failure.cause)
      }
      yield* Deferred.succeed(stopped, undefined)
    }))

    yield* shutdown.addSection(`worker ${name}`, () => {
      const { name: _, ...rest } = statsUnsafe()
      return rest
    })
    yield* shutdown.addProgress(name, () => {
      const { inFlight } = statsUnsafe()
      if (inFlight === 0) return undefined
      return `${inFlight} item${inFlight === 1 ? "" : "s"} in hand${drain.statsUnsafe().wrapUpRequested ? " (wrap-up requested)" : ""}`
    })
    yield* shutdown.addStep(`${name}: stop taking`, stopWith("shutdown"), { phase: "stopAccepting" })
    // Runs before the drain's own Scope finalizer (added earlier), so the
    // worker stops taking before its drain closes.
    yield* holdScope(shutdown, Effect.void, Effect.asVoid(stopWith("scope")))

    return {
      name,
      drain,
      stop: stopWith("stop"),
      awaitStopped: Deferred.await(stopped),
      stats: Effect.sync(statsUnsafe),
      statsUnsafe
    } satisfies Worker
  })

/**
 * Options of {@link repeat}.
 *
 * @since 0.1.0
 * @category models
 */
export interface RepeatOptions<Out, In, SE, SR> extends Pick<Drain.Options, "timeout" | "softTimeout" | "softRatio"> {
  /** When to run the next iteration (input: the iteration's result). */
  readonly schedule: Schedule.Schedule<Out, In, SE, SR>
  /** The phase whose start stops the loop. Default `stopAccepting`. */
  readonly stopPhase?: Extract<Phase.Phase, "readiness" | "preStop" | "stopAccepting"> | undefined
}

/**
 * Stats of a repeating task: the drain's counts (each iteration is a unit)
 * plus how the loop ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface RepeatStats {
  readonly name: string
  readonly iterations: number
  readonly state: "running" | "stopped"
  /** `shutdown` or `scope`: stopped between iterations; `failed`: an iteration failed; `schedule`: the schedule ended. */
  readonly endedBy?: "shutdown" | "scope" | "failed" | "schedule"
  readonly failure?: string
  /** Iterations that finished by themselves, before / after the wrap-up request. */
  readonly completed: number
  readonly wrappedUp: number
  /** Iterations cut by the hard deadline or escalation. */
  readonly interrupted: number
}

/**
 * A repeating task.
 *
 * @since 0.1.0
 * @category models
 */
export interface Repeating {
  readonly name: string
  readonly drain: Drain.Drain
  readonly stats: Effect.Effect<RepeatStats>
  /** Completes once the loop ended (no iteration will start any more). */
  readonly awaitEnded: Effect.Effect<void>
}

/**
 * Run `effect` on `schedule` until the shutdown: when `stopPhase` starts, no
 * new iteration begins; the one in progress is a unit of a drain named `name`
 * and finishes (or wraps up, or is interrupted at the hard deadline) during
 * the `drain` phase. Never cut mid-iteration by the stop itself. A failing
 * iteration ends the loop, as with `Effect.repeat`. Reports `repeat <name>`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const repeat = <A, E, R, Out, SE, SR>(
  name: string,
  effect: Effect.Effect<A, E, R>,
  options: RepeatOptions<Out, A, SE, SR>
): Effect.Effect<Repeating, Drain.DrainError | ShutdownConfigError, Shutdown.Shutdown | Scope.Scope | R | SR> =>
  Effect.gen(function*() {
    const stopPhase = yield* OptionCheck.check(options, (c) => {
      c.name("name", name)
      return c.oneOf("stopPhase", options.stopPhase ?? defaults.stopPhase, ["readiness", "preStop", "stopAccepting"] as const)!
    })
    const shutdown = yield* Shutdown.Shutdown
    const drain = yield* Drain.make(name, drainOptions(options))
    let iterations = 0
    let endedBy: RepeatStats["endedBy"]
    let failure: string | undefined
    const ended = Deferred.makeUnsafe<void>()
    const iteration = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        iterations++
        const fiber = yield* drain.run(effect)
        return yield* restore(Fiber.join(fiber))
      })
    )
    const loop = Effect.repeat(iteration, options.schedule).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (endedBy === undefined) {
            if (Exit.isSuccess(exit)) endedBy = "schedule"
            else if (!Cause.hasInterruptsOnly(exit.cause)) {
              const error = Cause.squash(exit.cause)
              // Refused: the drain closed (escalation) between iterations.
              endedBy = error instanceof Drain.Refused ? "shutdown" : "failed"
              if (endedBy === "failed") failure = describeCause(exit.cause)
            }
          }
          Deferred.doneUnsafe(ended, Exit.void)
        })
      )
    )
    const fiber = yield* Effect.forkDetach(loop)
    // Interrupting the loop only interrupts its wait (or its sleep between
    // iterations): an iteration in progress runs in the drain and ends there.
    const stopWith = (by: "shutdown" | "scope") =>
      Effect.suspend(() => {
        if (endedBy === undefined) endedBy = by
        return Fiber.interrupt(fiber)
      })
    const stats = (): RepeatStats => {
      const d = drain.statsUnsafe()
      return {
        name,
        iterations,
        state: Deferred.isDoneUnsafe(ended) ? "stopped" : "running",
        ...(endedBy === undefined ? {} : { endedBy }),
        ...(failure === undefined ? {} : { failure }),
        completed: d.completed,
        wrappedUp: d.wrappedUp,
        interrupted: d.interrupted
      }
    }
    yield* shutdown.addSection(`repeat ${name}`, () => {
      const { name: _, ...rest } = stats()
      return rest
    })
    yield* shutdown.addProgress(name, () => drain.statsUnsafe().inFlight > 0 ? "an iteration in progress" : undefined)
    yield* shutdown.addStep(`${name}: stop repeating`, stopWith("shutdown"), { phase: stopPhase })
    yield* holdScope(shutdown, Effect.void, Effect.asVoid(stopWith("scope")))
    return {
      name,
      drain,
      stats: Effect.sync(stats),
      awaitEnded: Deferred.await(ended)
    } satisfies Repeating
  })
