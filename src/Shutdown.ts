/**
 * The Shutdown service: a Scope whose finalizers are the cleanup steps of a
 * graceful shutdown, grouped in phases that run in a fixed order, each step
 * timed and bounded, the whole bounded by one budget.
 *
 * Build it with {@link layer} (or `NodeShutdown.layer`, which adds signals),
 * register steps with {@link addStep} or plain `Effect.addFinalizer` /
 * `acquireRelease` (the layer provides the `cleanup` phase as the program's
 * Scope), and read the outcome with {@link awaitReport}.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Runtime, Scope } from "effect"
import * as Budget from "./Budget.ts"
import { type Input as DurationInput, toMillis } from "./internal/duration.ts"
import * as Engine from "./internal/engine.ts"
import { describeCause } from "./internal/runStep.ts"
import * as ScopeSteps from "./internal/scopeSteps.ts"
import { reserveMs, StepDeadline } from "./internal/stepDeadline.ts"
import * as Sequence from "./internal/sequence.ts"
import * as Phase from "./Phase.ts"
import type * as ShutdownReport from "./ShutdownReport.ts"

/**
 * Options of a named step.
 *
 * @since 0.1.0
 * @category models
 */
export interface StepOptions {
  /** The phase the step runs in. Default `cleanup`. */
  readonly phase?: Phase.Phase | undefined
  /** The most the step may take; the phase's allowance still applies. */
  readonly timeout?: DurationInput | undefined
}

/**
 * What {@link Service.wait} waits for: a predicate polled at `pollInterval`, an
 * Effect returning a boolean (polled likewise), or a Deferred (awaited).
 *
 * @since 0.1.0
 * @category models
 */
export type Condition<A = unknown, E = unknown> = (() => boolean) | Effect.Effect<boolean> | Deferred.Deferred<A, E>

/**
 * Options of {@link Service.wait}.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitOptions {
  /** How often a predicate is checked. Default 100 ms. */
  readonly pollInterval?: DurationInput | undefined
  /**
   * The most to wait. Default, while shutting down: until the current step's
   * (or phase's) deadline, less a tenth of the time left (at most
   * `forcedStepTimeout`) so the step can act on a `false`; before: no limit.
   */
  readonly timeout?: DurationInput | undefined
}

/**
 * The service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly budget: Budget.Budget
  /** The Scope of a phase: its finalizers are that phase's steps. */
  readonly scope: (phase: Phase.Phase) => Scope.Scope
  /** Register a named, timed step (default phase: `cleanup`). Runs at most once. */
  readonly addStep: <R>(
    name: string,
    step: Effect.Effect<unknown, unknown, R>,
    options?: StepOptions
  ) => Effect.Effect<void, never, R>
  /** A plain boolean read, for hot paths (e.g. per request). */
  readonly isShuttingDownUnsafe: () => boolean
  readonly isShuttingDown: Effect.Effect<boolean>
  /** Completes with the reason once the shutdown starts. */
  readonly awaitStart: Effect.Effect<ShutdownReport.Reason>
  /** Start the shutdown by hand. Idempotent: true only for the call that started it. */
  readonly trigger: (reason?: string | ShutdownReport.Reason) => Effect.Effect<boolean>
  readonly triggerUnsafe: (reason: ShutdownReport.Reason) => boolean
  /**
   * Escalate (what a second signal does): remaining waits end, drains are
   * interrupted, remaining steps get `forcedStepTimeout`. Starts the shutdown
   * first when needed.
   */
  readonly forceUnsafe: (signal: string) => boolean
  readonly isForcedUnsafe: () => boolean
  readonly awaitForced: Effect.Effect<void>
  /** `running` before the shutdown, then the current phase, then `done`. */
  readonly statusUnsafe: () => Phase.Status
  readonly status: Effect.Effect<Phase.Status>
  /** Time left before the hard deadline (the whole budget before the shutdown starts). */
  readonly remaining: Effect.Effect<Duration.Duration>
  /** Time left in the current phase's allowance (the whole budget before the shutdown starts). */
  readonly phaseRemaining: Effect.Effect<Duration.Duration>
  /**
   * Inside a step: the time it may still spend waiting and still have a
   * moment to act on the outcome (its deadline, less a tenth of the time left,
   * at most `forcedStepTimeout`). Outside a step: like `phaseRemaining`;
   * before the shutdown: infinite.
   */
  readonly stepRemaining: Effect.Effect<Duration.Duration>
  /**
   * True when `condition` held before the deadline, false when the deadline
   * passed or the shutdown was forced first.
   */
  readonly wait: <A, E>(condition: Condition<A, E>, options?: WaitOptions) => Effect.Effect<boolean>
  /** Completes with the report once every phase has run. */
  readonly awaitReport: Effect.Effect<ShutdownReport.ShutdownReport>
  /** Add a named section (counts, outcomes) to the report, read when it is written. */
  readonly addSection: (name: string, data: () => Readonly<Record<string, unknown>>) => Effect.Effect<void>
  /**
   * Add a line part to the progress log of the drain phase, e.g. `http` →
   * "3 requests on 5 connections" (return undefined to say nothing).
   */
  readonly addProgress: (name: string, describe: () => string | undefined) => Effect.Effect<void>
  /** Time left before the hard deadline, in ms: for watchdogs outside the runtime. */
  readonly remainingMillisUnsafe: () => number
  /** The exit code the shutdown decided, once the report exists. */
  readonly exitCodeUnsafe: () => number
}

/**
 * The Shutdown service tag.
 *
 * @since 0.1.0
 * @category services
 */
export class Shutdown extends Context.Service<Shutdown, Service>()("winddown/Shutdown") {}

/**
 * Options of {@link make} and {@link layer}: the budget split plus how steps
 * are bounded and which exit code the shutdown ends with.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Budget.Input {
  /** Timeout of steps registered without one. Default: only the phase's allowance bounds them. */
  readonly stepTimeout?: DurationInput | undefined
  /** After escalation, what each remaining (non-drain) step still gets. */
  readonly forcedStepTimeout?: DurationInput | undefined
  /** Exit code after a signal: `success` (0) or `conventional` (128 + signal number: 143, 130). */
  readonly signalExit?: "success" | "conventional" | undefined
  /** Exit code when a second signal forced the shutdown. */
  readonly forcedExitCode?: number | undefined
  /** Exit code when the hard deadline stopped the process (Node watchdog). */
  readonly deadlineExitCode?: number | undefined
  /** During the drain, log what is still in flight this often; 0 turns it off. */
  readonly progressInterval?: DurationInput | undefined
  /**
   * Interrupt the fiber the layer was provided to when the shutdown starts.
   * Default true for {@link layer}; tests that trigger from the same fiber set it false.
   */
  readonly interruptProgram?: boolean | undefined
}

/**
 * Defaults of the options that are not budgets (see `Budget.defaults`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  forcedStepTimeout: "1 second",
  signalExit: "success",
  forcedExitCode: 125,
  deadlineExitCode: 124,
  progressInterval: "1 second"
} as const

const readSettings = (options: Options): Effect.Effect<Engine.Settings, Budget.BudgetError> =>
  Effect.suspend(() => {
    const stepTimeoutMs = options.stepTimeout === undefined ? undefined : toMillis(options.stepTimeout)
    const forcedStepTimeoutMs = toMillis(options.forcedStepTimeout ?? defaults.forcedStepTimeout)
    const progressIntervalMs = toMillis(options.progressInterval ?? defaults.progressInterval)
    const invalid = (message: string) => Effect.fail(new Budget.BudgetError({ reason: "InvalidOption", message }))
    if (options.stepTimeout !== undefined && !(stepTimeoutMs! > 0)) {
      return invalid(`stepTimeout must be a duration above zero, got ${JSON.stringify(options.stepTimeout)}`)
    }
    if (!(forcedStepTimeoutMs! >= 0)) {
      return invalid(`forcedStepTimeout must be a duration, got ${JSON.stringify(options.forcedStepTimeout)}`)
    }
    if (!(progressIntervalMs! >= 0)) {
      return invalid(`progressInterval must be a duration (0 turns it off), got ${JSON.stringify(options.progressInterval)}`)
    }
    for (const key of ["forcedExitCode", "deadlineExitCode"] as const) {
      const code = options[key]
      if (code !== undefined && !(Number.isInteger(code) && code >= 0 && code <= 255)) {
        return invalid(`${key} must be an integer from 0 to 255, got ${code}`)
      }
    }
    if (options.signalExit !== undefined && options.signalExit !== "success" && options.signalExit !== "conventional") {
      return invalid(`signalExit must be "success" or "conventional", got ${JSON.stringify(options.signalExit)}`)
    }
    return Effect.succeed({
      stepTimeoutMs,
      forcedStepTimeoutMs: forcedStepTimeoutMs!,
      signalExit: options.signalExit ?? defaults.signalExit,
      forcedExitCode: options.forcedExitCode ?? defaults.forcedExitCode,
      deadlineExitCode: options.deadlineExitCode ?? defaults.deadlineExitCode,
      progressIntervalMs: progressIntervalMs!
    })
  })

const reasonOf = (reason: string | ShutdownReport.Reason | undefined): ShutdownReport.Reason =>
  typeof reason === "object" ? reason : { _tag: "manual", message: reason ?? "trigger" }

/** How the end of the program translates into a reason when nothing else started the shutdown. */
const reasonFromExit = (exit: Exit.Exit<unknown, unknown>): ShutdownReport.Reason => {
  if (Exit.isSuccess(exit)) return { _tag: "completed" }
  if (Cause.hasInterruptsOnly(exit.cause)) return { _tag: "interrupted" }
  return {
    _tag: "failed",
    message: describeCause(exit.cause),
    exitCode: Runtime.getErrorExitCode(Cause.squash(exit.cause))
  }
}

const msToDuration = (ms: number) => Duration.millis(Math.max(0, ms))

const makeService = (engine: Engine.Engine, onStart: () => void): Service => {
  const triggerUnsafe = (reason: ShutdownReport.Reason) => {
    const started = Engine.start(engine, reason)
    if (started) onStart()
    return started
  }
  const remainingMillisUnsafe = () => Engine.remainingMs(engine)
  const phaseRemainingMs = () =>
    engine.phaseDeadline === undefined
      ? remainingMillisUnsafe()
      : engine.phaseDeadline - engine.clock.currentTimeMillisUnsafe()
  // Inside a step: its deadline less a reserve to act on the answer; else the
  // current phase's; before the shutdown: none.
  const defaultWaitDeadline = (now: number) =>
    Effect.map(StepDeadline, (stepDeadline: number | undefined) => {
      const end = stepDeadline ?? engine.phaseDeadline
      if (end === undefined || engine.startedAt === undefined) return Infinity
      return end - reserveMs(end - now, engine.settings.forcedStepTimeoutMs)
    })
  const wait = <A, E>(condition: Condition<A, E>, options: WaitOptions = {}): Effect.Effect<boolean> =>
    Effect.gen(function*() {
      const pollMs = toMillis(options.pollInterval ?? 100) ?? 100
      const start = yield* Clock.currentTimeMillis
      const deadline = options.timeout !== undefined
        ? start + (toMillis(options.timeout) ?? 0)
        : yield* defaultWaitDeadline(start)
      const forcedOrLate = Effect.raceFirst(
        Effect.as(Deferred.await(engine.forced), false),
        Effect.as(Effect.sleep(msToDuration(deadline - start)), false)
      )
      if (Deferred.isDeferred(condition)) {
        // A Deferred completed with a failure still means "the event happened".
        const event = Effect.as(Effect.exit(Deferred.await(condition as Deferred.Deferred<A, E>)), true)
        return yield* Effect.raceFirst(event, forcedOrLate)
      }
      const check = Effect.isEffect(condition) ? condition : Effect.sync(condition as () => boolean)
      while (true) {
        if (yield* check) return true
        const now = yield* Clock.currentTimeMillis
        if (engine.forcedAt !== undefined || now >= deadline) return false
        yield* Effect.raceFirst(Effect.sleep(Math.min(pollMs, deadline - now)), Deferred.await(engine.forced))
      }
    })
  return {
    budget: engine.budget,
    scope: (phase) => engine.scopes[phase],
    addStep: (name, step, options = {}) =>
      Effect.suspend(() => {
        // The types rule these out; plain JavaScript callers get a clear defect
        // at registration rather than a step that silently has no bound.
        const phase = options.phase ?? "cleanup"
        const timeoutMs = options.timeout === undefined ? undefined : toMillis(options.timeout)
        if (typeof name !== "string" || name.length === 0) {
          return Effect.die(new TypeError(`addStep: name must be a non-empty string, got ${JSON.stringify(name)}`))
        }
        if (!Phase.isPhase(phase)) {
          return Effect.die(new TypeError(`addStep "${name}": phase must be one of ${Phase.all.join(", ")}, got ${JSON.stringify(phase)}`))
        }
        if (options.timeout !== undefined && !(timeoutMs! > 0)) {
          return Effect.die(new TypeError(`addStep "${name}": timeout must be a duration above zero, got ${JSON.stringify(options.timeout)}`))
        }
        return Effect.contextWith((context: Context.Context<any>) =>
          ScopeSteps.add(engine.scopes[phase], { name, timeoutMs }, () => Effect.provideContext(step, context))
        )
      }),
    isShuttingDownUnsafe: () => engine.startedAt !== undefined,
    isShuttingDown: Effect.sync(() => engine.startedAt !== undefined),
    awaitStart: Deferred.await(engine.started),
    trigger: (reason) => Effect.sync(() => triggerUnsafe(reasonOf(reason))),
    triggerUnsafe,
    forceUnsafe: (signal) => {
      triggerUnsafe({ _tag: "signal", signal })
      return Engine.force(engine, signal)
    },
    isForcedUnsafe: () => engine.forcedAt !== undefined,
    awaitForced: Deferred.await(engine.forced),
    statusUnsafe: () => engine.status,
    status: Effect.sync(() => engine.status),
    remaining: Effect.sync(() => msToDuration(remainingMillisUnsafe())),
    phaseRemaining: Effect.sync(() => msToDuration(phaseRemainingMs())),
    stepRemaining: Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.map(defaultWaitDeadline(now), (deadline) =>
        deadline === Infinity ? Duration.infinity : msToDuration(deadline - now))),
    wait,
    awaitReport: Deferred.await(engine.report),
    addSection: (name, data) => Effect.sync(() => void engine.sections.set(name, data)),
    addProgress: (name, describe) => Effect.sync(() => void engine.progress.set(name, describe)),
    remainingMillisUnsafe,
    exitCodeUnsafe: () => Engine.exitCodeFor(engine)
  }
}

/**
 * Build a Shutdown in the current Scope. Closing that Scope starts the
 * shutdown (reason `completed`, `failed` or `interrupted` from its Exit, unless
 * it had started already) and waits for the report.
 *
 * `onStart` runs synchronously when the shutdown starts (the layer uses it to
 * interrupt the program).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {},
  onStart: () => void = () => {}
): Effect.Effect<Service, Budget.BudgetError, Scope.Scope> =>
  Effect.gen(function*() {
    const budget = yield* Budget.make(options)
    const settings = yield* readSettings(options)
    const clock = yield* Clock.Clock
    const engine = Engine.make(budget, settings, clock)
    const service = makeService(engine, onStart)
    const sequence = yield* Effect.forkDetach(Sequence.run(engine))
    yield* Effect.addFinalizer((exit) =>
      Effect.gen(function*() {
        Deferred.doneUnsafe(engine.programDone, Exit.succeed(exit))
        Engine.start(engine, reasonFromExit(exit))
        yield* Fiber.await(sequence)
      })
    )
    return service
  })

/**
 * The Shutdown layer without signal handling (add `NodeShutdown.layer` for
 * that). Provides the service and, as the program's `Scope`, the `cleanup`
 * phase: `Effect.addFinalizer` and `acquireRelease` in the program become
 * cleanup steps, interleaved with named ones in reverse acquisition order.
 *
 * Provide it outermost (`program.pipe(Effect.provide(layer))`) so that it can
 * interrupt the program when the shutdown starts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Shutdown | Scope.Scope, Budget.BudgetError> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const service = yield* makeInterrupting(options)
      return Context.make(Shutdown, service).pipe(Context.add(Scope.Scope, service.scope("cleanup")))
    })
  )

/**
 * {@link make}, interrupting the fiber that builds it (the program, when the
 * layer is provided with `Effect.provide`) as the shutdown starts, unless
 * `interruptProgram: false`. `onStart` runs first, synchronously.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInterrupting = (
  options: Options = {},
  onStart: () => void = () => {}
): Effect.Effect<Service, Budget.BudgetError, Scope.Scope> =>
  Effect.withFiber((fiber) => {
    let programDone = false
    // Its context now, for the logger: a finished fiber's context is not kept.
    const context = fiber.context
    const service = make(options, () => {
      onStart()
      // Not while the program is already finishing: that would turn its
      // success into an interruption.
      if (options.interruptProgram === false || programDone) return
      if (fiber.pollUnsafe() === undefined) return fiber.interruptUnsafe()
      // The fiber that built the layer is gone: it was a helper of a parallel
      // build (Layer.mergeAll, Effect.provide([...])), not the program.
      Effect.runForkWith(context)(Effect.logWarning(
        "[winddown] cannot interrupt the program: the Shutdown layer was built inside a parallel layer build " +
          "(Layer.mergeAll or Effect.provide([...])). Provide it on its own, outermost: program.pipe(Effect.provide(ShutdownLive))"
      ))
    })
    return Effect.tap(service, () => Effect.addFinalizer(() => Effect.sync(() => void (programDone = true))))
  })

/**
 * A layer for tests: no program interruption, budgets as given (TestClock
 * drives them under `it.effect`).
 *
 * @since 0.1.0
 * @category testing
 */
export const layerTest = (options: Options = {}): Layer.Layer<Shutdown | Scope.Scope, Budget.BudgetError> =>
  layer({ ...options, interruptProgram: false })

/**
 * Register a named, timed cleanup step in the current Shutdown.
 *
 * @since 0.1.0
 * @category combinators
 */
export const addStep = <R>(
  name: string,
  step: Effect.Effect<unknown, unknown, R>,
  options?: StepOptions
): Effect.Effect<void, never, R | Shutdown> => Effect.flatMap(Shutdown, (s) => s.addStep(name, step, options))

/**
 * `acquireRelease` whose release is a named step of the given phase.
 *
 * @since 0.1.0
 * @category combinators
 */
export const acquireRelease = <A, E, R, R2>(
  name: string,
  acquire: Effect.Effect<A, E, R>,
  release: (a: A) => Effect.Effect<unknown, unknown, R2>,
  options?: StepOptions
): Effect.Effect<A, E, R | R2 | Shutdown> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.tap(restore(acquire), (a) => addStep(name, release(a), options))
  )

/**
 * True once the shutdown started.
 *
 * @since 0.1.0
 * @category combinators
 */
export const isShuttingDown: Effect.Effect<boolean, never, Shutdown> = Effect.flatMap(
  Shutdown,
  (s) => s.isShuttingDown
)

/**
 * Wait until the shutdown starts; returns why.
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitStart: Effect.Effect<ShutdownReport.Reason, never, Shutdown> = Effect.flatMap(
  Shutdown,
  (s) => s.awaitStart
)

/**
 * Start the shutdown by hand; idempotent.
 *
 * @since 0.1.0
 * @category combinators
 */
export const trigger = (reason?: string): Effect.Effect<boolean, never, Shutdown> =>
  Effect.flatMap(Shutdown, (s) => s.trigger(reason))

/**
 * Wait for a condition within the shutdown's time (see {@link Service.wait}).
 *
 * @since 0.1.0
 * @category combinators
 */
export const wait = <A, E>(condition: Condition<A, E>, options?: WaitOptions): Effect.Effect<boolean, never, Shutdown> =>
  Effect.flatMap(Shutdown, (s) => s.wait(condition, options))

/**
 * The current phase.
 *
 * @since 0.1.0
 * @category combinators
 */
export const status: Effect.Effect<Phase.Status, never, Shutdown> = Effect.flatMap(
  Shutdown,
  (s) => s.status
)

/**
 * Time left before the hard deadline.
 *
 * @since 0.1.0
 * @category combinators
 */
export const remaining: Effect.Effect<Duration.Duration, never, Shutdown> = Effect.flatMap(
  Shutdown,
  (s) => s.remaining
)

/**
 * Wait for the report of the shutdown.
 *
 * @since 0.1.0
 * @category combinators
 */
export const awaitReport: Effect.Effect<ShutdownReport.ShutdownReport, never, Shutdown> = Effect.flatMap(
  Shutdown,
  (s) => s.awaitReport
)
