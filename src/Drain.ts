/**
 * Work in flight, tracked as fibers, drained under the shutdown budget.
 *
 * A Drain is a named set of units of work (a request, a job, an iteration of
 * a loop). Each unit runs in its own fiber, detached from the caller, so the
 * program's interruption at the start of a shutdown does not cut it. The
 * drain closes when its step of the `drain` phase starts (or when the Scope it
 * was made in closes before any shutdown):
 *
 * 1. new work is refused with a typed {@link Refused}; never silently dropped;
 * 2. units in flight are awaited, within the drain phase's allowance (or the
 *    drain's own `timeout`, whichever is shorter);
 * 3. at the soft deadline (`softRatio` of that time, or `softTimeout`) running
 *    units are asked to wrap up: {@link wrapUpRequested} completes, like
 *    Celery's soft time limit, so they can checkpoint and stop;
 * 4. at the hard deadline, or at once when the shutdown is forced (a second
 *    signal), the remaining units are interrupted: their own finalizers
 *    (checkpoints, releases) run before the drain step ends.
 *
 * Every drain adds a section `drain <name>` to the ShutdownReport with the
 * count of units completed, failed, wrapped up, interrupted and refused.
 * Drains nest: `drain.child(name)` closes with its parent, reports separately.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Deferred, type Duration, Effect, Exit, Fiber, Metric, type Scope } from "effect"
import { dual } from "effect/Function"
import * as Deadline from "./internal/deadline.ts"
import { formatMillis, toMillis } from "./internal/duration.ts"
import { holdScope } from "./internal/hold.ts"
import * as Log from "./internal/log.ts"
import * as OptionCheck from "./internal/options.ts"
import { describeCause } from "./internal/runStep.ts"
import * as Trace from "./internal/trace.ts"
import * as Shutdown from "./Shutdown.ts"
import type { ShutdownConfigError } from "./ShutdownConfig.ts"
import * as ShutdownMetrics from "./ShutdownMetrics.ts"

/**
 * Defaults of {@link Options} and {@link WaitOptions}, in one place.
 *
 * - `softRatio`: running units are asked to wrap up after 80 % of the time the
 *   drain may take (Celery's soft 120 s / hard 150 s is the same ratio).
 * - `timeout`: none of its own; the drain phase's allowance bounds the drain.
 * - `pollInterval`: how often {@link waitFor} checks a predicate.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  softRatio: 0.8,
  timeout: "drain phase allowance",
  pollInterval: "100 millis"
} as const

/**
 * Options of {@link make} and `drain.child`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The most this drain may take once it closes. The drain phase's allowance
   * still applies; the shorter wins. Default: the allowance alone.
   */
  readonly timeout?: Duration.Input | undefined
  /**
   * Ask running units to wrap up this long after the drain closed (capped by
   * the hard deadline). Exclusive with `softRatio`.
   */
  readonly softTimeout?: Duration.Input | undefined
  /**
   * Ask running units to wrap up after this fraction (above 0, at most 1) of
   * the time the drain may take. Default 0.8; 1 means no soft deadline.
   */
  readonly softRatio?: number | undefined
  /**
   * Name of the report section; `false` for none (a helper that reports the
   * drain in its own section). Default `drain <name>`.
   */
  readonly section?: string | false | undefined
  /** More attributes for the drain step's span, read when the drain ends (a helper's own counts). */
  readonly spanAttributes?: (() => Readonly<Record<string, unknown>>) | undefined
}

/**
 * Why a Drain (or a helper built on it) could not be made.
 *
 * @since 0.1.0
 * @category errors
 */
export class DrainError extends Data.TaggedError("DrainError")<{
  readonly reason: "InvalidOption" | "DuplicateName"
  readonly message: string
}> {
  constructor(args: { readonly reason: DrainError["reason"]; readonly message: string }) {
    super(args)
    this.stack = `${this._tag}: ${this.message}`
  }
}

/**
 * Work submitted to a drain that no longer accepts any: its drain step has
 * started (or its Scope closed, or the shutdown was forced).
 *
 * @since 0.1.0
 * @category errors
 */
export class Refused extends Data.TaggedError("DrainRefused")<{
  /** The full name of the drain, e.g. `jobs/email`. */
  readonly drain: string
  readonly message: string
}> {}

/**
 * Where a drain stands.
 *
 * @since 0.1.0
 * @category models
 */
export type State = "open" | "closing" | "closed"

/**
 * How a closed drain ended: every unit finished by itself (`drained`), the
 * hard deadline interrupted some (`timedOut`), or escalation did (`forced`).
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = "drained" | "timedOut" | "forced"

/**
 * The counts of a drain. `accepted = completed + failed + wrappedUp +
 * interrupted + inFlight` at any time; `refused` counts submissions turned
 * away.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly state: State
  readonly outcome?: Outcome
  readonly accepted: number
  /** Succeeded before any wrap-up request. */
  readonly completed: number
  /** Failed (not interrupted) before any wrap-up request. */
  readonly failed: number
  /** Ended by itself (success or failure) after the wrap-up request. */
  readonly wrappedUp: number
  /** Interrupted: by the hard deadline, by escalation, or by their caller. */
  readonly interrupted: number
  readonly refused: number
  /** Still running (after the drain closed: units that ignored interruption). */
  readonly inFlight: number
  /** The soft deadline passed (or escalation came): running units were asked to wrap up. */
  readonly wrapUpRequested: boolean
  /** The time the drain was given when it closed, in ms. */
  readonly limitMs?: number
  /** When running units were asked to wrap up, in ms after the drain closed. */
  readonly softDeadlineMs?: number
  /** From the drain's close to its end, in ms. */
  readonly durationMs?: number
}

/**
 * The wrap-up signal a unit sees: completes at its drain's soft deadline.
 *
 * @since 0.1.0
 * @category models
 */
export interface WrapUpSignal {
  /** The drain the current unit runs in; undefined outside any drain. */
  readonly drain: string | undefined
  /** Completes when the unit should wrap up. Never, outside a drain. */
  readonly requested: Effect.Effect<void>
  readonly isRequestedUnsafe: () => boolean
}

/**
 * The wrap-up signal of the current unit, provided by `drain.run`. Outside a
 * drain it never fires.
 *
 * @since 0.1.0
 * @category services
 */
export const WrapUp: Context.Reference<WrapUpSignal> = Context.Reference<WrapUpSignal>("winddown/Drain/WrapUp", {
  defaultValue: () => ({ drain: undefined, requested: Effect.never, isRequestedUnsafe: () => false })
})

/**
 * Completes when the drain running the current unit asks it to wrap up (its
 * soft deadline). Race it, or poll {@link isWrapUpRequested}, to checkpoint.
 *
 * @since 0.1.0
 * @category combinators
 */
export const wrapUpRequested: Effect.Effect<void> = Effect.flatMap(WrapUp, (w) => w.requested)

/**
 * True once the drain running the current unit asked it to wrap up.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isWrapUpRequested: Effect.Effect<boolean> = Effect.map(WrapUp, (w) => w.isRequestedUnsafe())

/**
 * Run `self` until the wrap-up request: if it comes first, `self` is
 * interrupted (its finalizers run) and `onWrapUp` (a checkpoint) runs instead.
 *
 * @since 0.1.0
 * @category combinators
 */
export const untilWrapUp: {
  <B, E2, R2>(
    onWrapUp: Effect.Effect<B, E2, R2>
  ): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A | B, E | E2, R | R2>
  <A, E, R, B, E2, R2>(
    self: Effect.Effect<A, E, R>,
    onWrapUp: Effect.Effect<B, E2, R2>
  ): Effect.Effect<A | B, E | E2, R | R2>
} = dual(2, <A, E, R, B, E2, R2>(self: Effect.Effect<A, E, R>, onWrapUp: Effect.Effect<B, E2, R2>) =>
  untilWrapUpImpl(self, onWrapUp))

const untilWrapUpImpl = <A, E, R, B, E2, R2>(
  self: Effect.Effect<A, E, R>,
  onWrapUp: Effect.Effect<B, E2, R2>
): Effect.Effect<A | B, E | E2, R | R2> =>
  Effect.flatMap(WrapUp, (w) => {
    if (w.isRequestedUnsafe()) return onWrapUp
    const done = Symbol()
    return Effect.flatMap(
      Effect.raceFirst(self, Effect.as(w.requested, done)),
      (a): Effect.Effect<A | B, E2, R2> => a === done ? onWrapUp : Effect.succeed(a as A)
    )
  })

/**
 * A drain.
 *
 * @since 0.1.0
 * @category models
 */
export interface Drain {
  /** The full name: `parent/child` for nested drains. */
  readonly name: string
  /**
   * Fork `effect` as a unit of this drain; the fiber is detached from the
   * caller (interrupting the caller does not interrupt it). Fails with
   * {@link Refused} once the drain closed.
   */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, Refused, R>
  /**
   * {@link Drain.run} from outside a fiber (a client library's callback: a
   * broker's delivery, a job handler), in `context`: the unit's fiber, or
   * {@link Refused} once the drain closed. Starts one fiber, where
   * `Effect.runFork(drain.run(effect))` starts two.
   */
  readonly runUnsafe: <A, E, R>(effect: Effect.Effect<A, E, R>, context: Context.Context<R>) => Fiber.Fiber<A, E> | Refused
  /** {@link Drain.run} and wait for the result. */
  readonly runJoin: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Refused, R>
  /**
   * {@link Drain.runJoin}, handing refused work to `onRefused` (run in the
   * caller: answer 503, requeue, log) instead of failing.
   */
  readonly runOrElse: <A, E, R, B, E2, R2>(
    effect: Effect.Effect<A, E, R>,
    onRefused: (refused: Refused) => Effect.Effect<B, E2, R2>
  ) => Effect.Effect<A | B, E | E2, R | R2>
  /** A nested drain that closes with this one and reports in its own section. */
  readonly child: (name: string, options?: Options) => Effect.Effect<Drain, DrainError | ShutdownConfigError>
  readonly isAcceptingUnsafe: () => boolean
  readonly stats: Effect.Effect<Stats>
  readonly statsUnsafe: () => Stats
  /** Completes at this drain's soft deadline (also for code outside its units). */
  readonly wrapUpRequested: Effect.Effect<void>
  /** Completes with the final counts once the drain has closed. */
  readonly awaitClosed: Effect.Effect<Stats>
  /**
   * Close now (what the drain step does), bounded by `timeout` (default: the
   * drain's own timeout, else the budget's drain allowance).
   */
  readonly close: (timeout?: Duration.Input) => Effect.Effect<Stats>
}

interface Counts {
  accepted: number
  completed: number
  failed: number
  wrappedUp: number
  interrupted: number
  refused: number
}

interface Settings {
  readonly timeoutMs: number | undefined
  readonly softTimeoutMs: number | undefined
  readonly softRatio: number
  readonly spanAttributes: (() => Readonly<Record<string, unknown>>) | undefined
}

/**
 * Work that failed or died while the shutdown ran: each unit was logged with
 * its cause; the drain's step is reported `failed` with this message.
 *
 * @since 0.1.0
 * @category errors
 */
export class UnitsFailed extends Data.TaggedError("DrainUnitsFailed")<{
  readonly drain: string
  readonly failed: number
  readonly message: string
}> {}

interface Impl extends Drain {
  /**
   * Close by `deadline` (Clock ms): refuse new work, await the units (and
   * children), ask them to wrap up at the soft deadline. The caller bounds it:
   * the step runner interrupts it at the step's deadline, a standalone close
   * with a timeout; on interruption the units are interrupted and their own
   * finalizers (checkpoints) awaited. Second callers wait for the first.
   */
  readonly closeBy: (deadline: number) => Effect.Effect<void, UnitsFailed>
  readonly interruptAll: Effect.Effect<void>
  readonly settings: Settings
}

const invalid = (message: string) => new DrainError({ reason: "InvalidOption", message })

const readSettings = (options: Options, inherited: Settings | undefined): Effect.Effect<Settings, ShutdownConfigError> =>
  OptionCheck.check(options, (c) => {
    const timeoutMs = c.duration("timeout", options.timeout) ?? inherited?.timeoutMs
    if (options.softTimeout !== undefined && options.softRatio !== undefined) {
      c.refuse("softRatio", options.softRatio, `no softRatio when softTimeout is set (${JSON.stringify(options.softTimeout)})`)
    }
    const softTimeoutMs = c.duration("softTimeout", options.softTimeout, { zero: true })
    const softRatio = c.number("softRatio", options.softRatio, { min: 0, max: 1, exclusiveMin: true }) ??
      (softTimeoutMs === undefined ? inherited?.softRatio : undefined) ?? defaults.softRatio
    return {
      timeoutMs,
      softTimeoutMs: softTimeoutMs ?? (options.softRatio === undefined ? inherited?.softTimeoutMs : undefined),
      softRatio,
      spanAttributes: options.spanAttributes
    }
  })

const checkName = (name: string): Effect.Effect<void, ShutdownConfigError> =>
  OptionCheck.check(undefined, (c) => {
    if (typeof name !== "string" || name.trim().length === 0 || name.includes("/")) {
      c.refuse("name", name, `a non-empty name without "/"`)
    }
  })

/** Full drain names in use, per Shutdown: two drains may not share a report section. */
const namesInUse = new WeakMap<Shutdown.Service, Set<string>>()

const claimName = (shutdown: Shutdown.Service, name: string): DrainError | undefined => {
  let names = namesInUse.get(shutdown)
  if (names === undefined) namesInUse.set(shutdown, names = new Set())
  if (names.has(name)) {
    return new DrainError({ reason: "DuplicateName", message: `a drain named ${JSON.stringify(name)} already exists` })
  }
  names.add(name)
  return undefined
}

/** Said once per failed unit while shutting down, when the program's own scopes are already gone. */
const programGoneHint =
  " (the program had already ended and released its own scopes: if this work needs a layer provided inside the program, " +
  "release that layer after the drain with Shutdown.releaseAs)"

const makeImpl = (
  shutdown: Shutdown.Service,
  clock: Clock.Clock,
  name: string,
  settings: Settings
): Impl => {
  let state: State = "open"
  let outcome: Outcome | undefined
  let closedAt: number | undefined
  let limitMs: number | undefined
  let softDeadlineMs: number | undefined
  let closeEnd: number | undefined
  const fibers = new Set<Fiber.Fiber<unknown, unknown>>()
  const children: Array<Impl> = []
  const counts: Counts = { accepted: 0, completed: 0, failed: 0, wrappedUp: 0, interrupted: 0, refused: 0 }
  // Failures while the shutdown runs: nobody may be left to join those units.
  const lateFailures: Array<string> = []
  const wrapUp = Deferred.makeUnsafe<void>()
  let wrapUpRequested = false
  const closed = Deferred.makeUnsafe<Stats>()

  const requestWrapUp = () => {
    if (wrapUpRequested) return
    wrapUpRequested = true
    Deferred.doneUnsafe(wrapUp, Exit.void)
  }
  const signal: WrapUpSignal = {
    drain: name,
    requested: Deferred.await(wrapUp),
    isRequestedUnsafe: () => wrapUpRequested
  }

  const contexts = new WeakMap<Context.Context<never>, Context.Context<never>>()

  const statsUnsafe = (): Stats => ({
    name,
    state,
    ...(outcome === undefined ? {} : { outcome }),
    ...counts,
    inFlight: fibers.size,
    wrapUpRequested,
    ...(limitMs === undefined ? {} : { limitMs }),
    ...(softDeadlineMs === undefined ? {} : { softDeadlineMs }),
    ...(closedAt === undefined || closeEnd === undefined ? {} : { durationMs: closeEnd - closedAt })
  })

  const refused = Metric.withAttributes(ShutdownMetrics.refused, { "winddown.drain": name })
  const refuse = (context: Context.Context<never>): Refused => {
    counts.refused++
    refused.updateUnsafe(1, context)
    const why = state === "open" ? "forced" : state
    return new Refused({ drain: name, message: `drain ${JSON.stringify(name)} is ${why}: no new work accepted` })
  }

  const logFailure = (cause: Cause.Cause<unknown>, context: Context.Context<never>) => {
    const why = describeCause(cause)
    lateFailures.push(why)
    const line = `[winddown] drain ${JSON.stringify(name)}: a unit failed during the shutdown: ${why}${
      shutdown.isProgramDoneUnsafe() ? programGoneHint : ""
    }`
    // In the unit's own context, so the program's logger gets it.
    Effect.runForkWith(context)(Log.error(line, { "winddown.drain": name, "winddown.cause": why }))
  }

  const observe = (fiber: Fiber.Fiber<unknown, unknown>, context: Context.Context<never>) =>
  (exit: Exit.Exit<unknown, unknown>) => {
    fibers.delete(fiber)
    if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) counts.interrupted++
    else if (wrapUpRequested) counts.wrappedUp++
    else if (Exit.isSuccess(exit)) counts.completed++
    else counts.failed++
    if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) && shutdown.isShuttingDownUnsafe()) {
      logFailure(exit.cause, context)
    }
  }

  const runUnsafe = <A, E, R>(effect: Effect.Effect<A, E, R>, context: Context.Context<R>): Fiber.Fiber<A, E> | Refused => {
    const caller = context as Context.Context<never>
    if (state !== "open" || shutdown.isForcedUnsafe()) return refuse(caller)
    counts.accepted++
    // Forked synchronously, so that accepting and tracking are one step: no
    // close can slip between them. The unit's context is the caller's plus
    // the wrap-up signal, built once per caller context.
    let unitContext = contexts.get(caller)
    if (unitContext === undefined) {
      unitContext = Context.add(caller, WrapUp, signal)
      contexts.set(caller, unitContext)
    }
    const fiber = Effect.runForkWith(unitContext as Context.Context<R>)(effect)
    const exit = fiber.pollUnsafe()
    if (exit === undefined) {
      fibers.add(fiber)
      fiber.addObserver(observe(fiber, unitContext))
    } else observe(fiber, unitContext)(exit)
    return fiber
  }

  const run = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Fiber.Fiber<A, E>, Refused, R> =>
    Effect.withFiber((parent) => {
      const started = runUnsafe(effect, parent.context as Context.Context<R>)
      return started instanceof Refused ? Effect.fail(started) : Effect.succeed(started)
    })

  const interruptAll: Effect.Effect<void> = Effect.suspend(() =>
    Effect.all([
      Fiber.interruptAll(Array.from(fibers)),
      Effect.forEach(children, (c) => c.interruptAll, { concurrency: "unbounded", discard: true })
    ], { concurrency: 2, discard: true })
  )

  /** A child closes with its parent, by the parent's deadline or its own timeout, whichever is first. */
  const closeChild = (child: Impl, deadline: number) =>
    Effect.suspend(() => {
      const now = clock.currentTimeMillisUnsafe()
      const own = Deadline.child(now, deadline, child.settings.timeoutMs)
      const close = own >= deadline ? child.closeBy(deadline) : Effect.timeoutOption(child.closeBy(own), own - now)
      return Effect.asVoid(Effect.exit(close))
    })

  // Uninterruptible from the first line: an interruption between marking the
  // drain `closing` and the close itself would leave it closing forever.
  const closeBy = (deadline: number): Effect.Effect<void, UnitsFailed> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        if (state !== "open") {
          // Someone else is closing: wait, and interrupt the units when we are cut.
          return restore(Effect.asVoid(Deferred.await(closed))).pipe(Effect.onInterrupt(() => interruptAll))
        }
        state = "closing"
        const inFlightAtStart = fibers.size
        const start = clock.currentTimeMillisUnsafe()
        closedAt = start
        limitMs = Math.max(0, deadline - start)
        const softAt = Deadline.soft(start, deadline, settings)
        softDeadlineMs = softAt === Infinity ? limitMs : softAt - start
        const drained = Effect.all([
          Effect.suspend(() => Fiber.awaitAll(Array.from(fibers))),
          Effect.forEach(children, (c) => closeChild(c, deadline), { concurrency: "unbounded", discard: true })
        ], { concurrency: 2, discard: true })
        const softTimer = softAt === Infinity
          ? Effect.never
          : Effect.andThen(Effect.sleep(softAt - start), Effect.andThen(Effect.sync(requestWrapUp), Effect.never))
        return Effect.gen(function*() {
          const exit = yield* Effect.exit(restore(Effect.raceFirst(drained, softTimer)))
          outcome = Exit.isSuccess(exit) && fibers.size === 0
            ? "drained"
            : shutdown.isForcedUnsafe()
            ? "forced"
            : "timedOut"
          if (outcome !== "drained") {
            requestWrapUp()
            yield* interruptAll
          }
          yield* Effect.forEach(children, (c) => c.awaitClosed, { discard: true })
          state = "closed"
          closeEnd = clock.currentTimeMillisUnsafe()
          const stats = statsUnsafe()
          if (outcome !== "drained") {
            yield* Log.warn(
              `[winddown] drain ${JSON.stringify(name)} ${outcome === "forced" ? "forced" : "timed out"} after ${
                formatMillis(closeEnd - start)
              }: ${stats.interrupted} interrupted, ${stats.completed + stats.wrappedUp} finished`,
              { "winddown.drain": name, "winddown.outcome": outcome, "winddown.interrupted": stats.interrupted }
            )
          }
          Deferred.doneUnsafe(closed, Exit.succeed(stats))
          yield* Trace.annotate(() => ({
            "winddown.drain": name,
            "winddown.drain.outcome": outcome!,
            "winddown.drain.in_flight_at_start": inFlightAtStart,
            "winddown.drain.finished": stats.completed + stats.wrappedUp + stats.failed,
            "winddown.drain.wrapped_up": stats.wrappedUp,
            "winddown.drain.interrupted": stats.interrupted,
            "winddown.drain.refused": stats.refused,
            "winddown.drain.failed_during_shutdown": lateFailures.length,
            ...settings.spanAttributes?.()
          }))
          if (lateFailures.length > 0) {
            return yield* new UnitsFailed({
              drain: name,
              failed: lateFailures.length,
              message: `${lateFailures.length} unit${lateFailures.length === 1 ? "" : "s"} failed during the shutdown: ${
                lateFailures[0]
              }`
            })
          }
        })
      })
    )

  /** Close outside a shutdown step, bounded by `timeoutMs` from now. */
  const closeWithin = (timeoutMs: number): Effect.Effect<Stats> =>
    Effect.suspend(() => {
      const deadline = Deadline.after(clock.currentTimeMillisUnsafe(), timeoutMs)
      return Effect.andThen(
        Effect.ignore(Effect.timeoutOption(closeBy(deadline), timeoutMs)),
        Deferred.await(closed)
      )
    })

  const self: Impl = {
    name,
    settings,
    run,
    runUnsafe,
    runJoin: (effect) => Effect.flatMap(run(effect), Fiber.join),
    runOrElse: (effect, onRefused) => Effect.matchEffect(run(effect), { onFailure: onRefused, onSuccess: Fiber.join }),
    child: (childName, options = {}) =>
      Effect.gen(function*() {
        yield* checkName(childName)
        const childSettings = yield* readSettings(options, settings)
        const full = `${name}/${childName}`
        const taken = claimName(shutdown, full)
        if (taken !== undefined) return yield* taken
        if (state !== "open") {
          return yield* invalid(`drain ${JSON.stringify(name)} is ${state}: cannot add child ${JSON.stringify(childName)}`)
        }
        const child = makeImpl(shutdown, clock, full, childSettings)
        children.push(child)
        yield* addSection(shutdown, child, options)
        return child as Drain
      }),
    isAcceptingUnsafe: () => state === "open",
    stats: Effect.sync(() => statsUnsafe()),
    statsUnsafe,
    wrapUpRequested: Deferred.await(wrapUp),
    awaitClosed: Deferred.await(closed),
    close: (timeout) =>
      Effect.suspend(() => {
        const ms = timeout === undefined ? settings.timeoutMs ?? shutdown.budget.phasesMs.drain : toMillis(timeout)
        if (!(ms! >= 0)) return Effect.die(invalid(`close: timeout must be a duration, got ${JSON.stringify(timeout)}`))
        return closeWithin(ms!)
      }),
    closeBy,
    interruptAll
  }
  return self
}

/** The report section and the drain-phase progress line of a drain (unless `section: false`). */
const addSection = (shutdown: Shutdown.Service, drain: Impl, options: Options): Effect.Effect<void> =>
  options.section === false
    ? Effect.void
    : Effect.andThen(
      shutdown.addSection(options.section ?? `drain ${drain.name}`, () => {
        const { name: _, ...rest } = drain.statsUnsafe()
        return rest
      }),
      shutdown.addProgress(
        drain.name,
        () => describeProgress(drain.statsUnsafe(), "in flight"),
        () => drain.statsUnsafe().inFlight
      )
    )

/** "3 in flight (wrap-up requested)", or nothing once none is left. */
const describeProgress = (stats: Stats, what: string): string | undefined =>
  stats.inFlight === 0
    ? undefined
    : `${stats.inFlight} ${what}${stats.wrapUpRequested ? " (wrap-up requested)" : ""}`

/**
 * Make a drain and register its step in the `drain` phase of the current
 * Shutdown (step name: the drain's name; its `timeout` is the step's).
 *
 * If the Scope closes before any shutdown started (a subsystem torn down while
 * the program runs, or a program that ended by itself), the drain closes then,
 * by the same rules, bounded by its `timeout` or else the budget's drain
 * allowance. If the Scope closes during a shutdown (the program unwinding at
 * the signal), closing it waits until the drain step has drained: whatever
 * that Scope depends on (a pool the units use, provided around it) is
 * released after the work, not under it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  name: string,
  options: Options = {}
): Effect.Effect<Drain, DrainError | ShutdownConfigError, Shutdown.Shutdown | Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkName(name)
    const settings = yield* readSettings(options, undefined)
    const shutdown = yield* Shutdown.Shutdown
    const taken = claimName(shutdown, name)
    if (taken !== undefined) return yield* taken
    const clock = yield* Clock.Clock
    const drain = makeImpl(shutdown, clock, name, settings)
    yield* addSection(shutdown, drain, options)
    yield* shutdown.addStep(
      name,
      Effect.flatMap(Deadline.CurrentStep, (step) => drain.closeBy(step === undefined ? Infinity : Deadline.currentDeadline(step))),
      { phase: "drain", ...(settings.timeoutMs === undefined ? {} : { timeout: settings.timeoutMs }) }
    )
    // Escalation before the drain step runs (or while it is being cut) still
    // refuses new work and interrupts the units at once.
    yield* Effect.forkDetach(
      Effect.raceFirst(
        Effect.andThen(
          shutdown.awaitForced,
          Effect.suspend(() => Effect.ignore(Effect.timeoutOption(drain.closeBy(clock.currentTimeMillisUnsafe()), 0)))
        ),
        Effect.asVoid(drain.awaitClosed)
      )
    )
    yield* holdScope(
      shutdown,
      Effect.asVoid(drain.awaitClosed),
      Effect.asVoid(drain.close())
    )
    return drain as Drain
  })
/**
 * Options of {@link waitFor}.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitOptions {
  /** How often a predicate is checked. Default `defaults.pollInterval`. */
  readonly pollInterval?: Duration.Input | undefined
  /** The most to wait; the drain phase's allowance still applies. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * The seed's `wait(condition, poll_interval)` as a drain step: during the
 * `drain` phase, wait until `condition` holds (a predicate or boolean Effect
 * polled, or a Deferred awaited: "queue empty", "counter zero", "event set").
 * The report gets a section `wait <name>` saying whether it was met. A
 * condition not met by the deadline leaves the step `timedOut`; escalation
 * ends the wait at once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const waitFor = <A, E>(
  name: string,
  condition: Shutdown.Condition<A, E>,
  options: WaitOptions = {}
): Effect.Effect<void, ShutdownConfigError, Shutdown.Shutdown> =>
  Effect.gen(function*() {
    const { pollMs, timeoutMs } = yield* OptionCheck.check(options, (c) => {
      c.name("name", name)
      return {
        pollMs: c.duration("pollInterval", options.pollInterval ?? defaults.pollInterval)!,
        timeoutMs: c.duration("timeout", options.timeout)
      }
    })
    const shutdown = yield* Shutdown.Shutdown
    const clock = yield* Clock.Clock
    let section: { met?: boolean; waitedMs?: number; forced?: boolean } = {}
    yield* shutdown.addSection(`wait ${name}`, () => ({ met: false, ...section }))
    yield* shutdown.addStep(
      name,
      Effect.suspend(() => {
        const start = clock.currentTimeMillisUnsafe()
        const record = (met: boolean) =>
          Effect.sync(() => {
            section = { met, waitedMs: clock.currentTimeMillisUnsafe() - start, forced: shutdown.isForcedUnsafe() }
          })
        return shutdown.wait(condition, {
          pollInterval: pollMs,
          ...(timeoutMs === undefined ? {} : { timeout: timeoutMs })
        }).pipe(
          Effect.onInterrupt(() => record(false)),
          Effect.tap(record),
          Effect.flatMap((met) =>
            met
              ? Effect.void
              : shutdown.isForcedUnsafe()
              ? Effect.interrupt
              : Effect.fail(new Shutdown.StepTimedOut({ message: `condition not met within its deadline` }))
          )
        )
      }),
      { phase: "drain", ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }) }
    )
  })
