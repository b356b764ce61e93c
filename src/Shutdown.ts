/**
 * The Shutdown service: a Scope whose finalizers are the cleanup steps of a
 * graceful shutdown, grouped in phases that run in a fixed order, each step
 * timed and bounded, the whole bounded by one budget.
 *
 * Build it with {@link layer} (or `NodeShutdown.layer`, which adds signals),
 * register steps with {@link addStep} or plain `Effect.addFinalizer` /
 * `acquireRelease` (the layer provides the `cleanup` phase as the program's
 * Scope), hand app layers to a phase with {@link releaseAs}, and read the
 * outcome with {@link awaitReport}.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Runtime, Scope, Tracer } from "effect"
import { dual } from "effect/Function"
import * as Budget from "./Budget.ts"
import * as Deadline from "./internal/deadline.ts"
import { type Input as DurationInput, toMillis } from "./internal/duration.ts"
import * as Engine from "./internal/engine.ts"
import * as OptionCheck from "./internal/options.ts"
import { describeCause, StepTimedOut as StepTimedOutError } from "./internal/runStep.ts"
import * as ScopeSteps from "./internal/scopeSteps.ts"
import * as Sequence from "./internal/sequence.ts"
import * as Phase from "./Phase.ts"
import type { ShutdownConfigError } from "./ShutdownConfig.ts"
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
 * A step that ran out of time without being cut, e.g. a wait that gave up at
 * its deadline: fail a step with it and the report says `timedOut` (with this
 * message) instead of `failed`.
 *
 * @since 0.1.0
 * @category errors
 */
export const StepTimedOut = StepTimedOutError

/**
 * @since 0.1.0
 * @category errors
 */
export type StepTimedOut = StepTimedOutError

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
  /** True once the program the layer was provided to has ended (its own scopes are released). */
  readonly isProgramDoneUnsafe: () => boolean
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
   * "3 requests on 5 connections" (return undefined to say nothing), and,
   * with `inFlight`, a count sampled at each progress tick into the report.
   */
  readonly addProgress: (
    name: string,
    describe: () => string | undefined,
    inFlight?: () => number
  ) => Effect.Effect<void>
  /** Time left before the hard deadline, in ms: for watchdogs outside the runtime. */
  readonly remainingMillisUnsafe: () => number
  /**
   * The report as of now. When the budget is spent before the phases end (the
   * watchdog calls this at the hard deadline), it marks `budgetSpent`: the
   * current phase `running` with its running steps, later phases `notReached`,
   * and the deadline's exit code. After the end: the final report.
   */
  readonly snapshotUnsafe: (options?: { readonly budgetSpent?: boolean }) => ShutdownReport.ShutdownReport
  /** Steps abandoned at their deadline whose fibers are still running (what may hold the process). */
  readonly leftRunningUnsafe: () => ReadonlyArray<{ readonly phase: Phase.Phase; readonly name: string }>
  /** The exit code the shutdown decided (see exitCode.ts), once the report exists. */
  readonly exitCodeUnsafe: () => number | undefined
  /**
   * Work this shutdown waited for did not end cleanly (a cluster worker that
   * exited with an error, or had to be killed): end with `code` where the
   * shutdown would otherwise end with 0. The first request wins; a forced
   * shutdown, a spent budget or a failed program keep their own codes, and a
   * request after the report is ignored.
   */
  readonly requestExitCodeUnsafe: (code: number) => void
  /** The settings the exit code is decided from. */
  readonly exitSettings: Engine.Settings
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
  /** Exit code when the hard deadline stopped the process (Node watchdog), or a step left behind still ran at exit. */
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

const readSettings = (options: Options): Effect.Effect<Engine.Settings, ShutdownConfigError> =>
  OptionCheck.check(options, (c) => ({
    stepTimeoutMs: c.duration("stepTimeout", options.stepTimeout),
    forcedStepTimeoutMs: c.duration("forcedStepTimeout", options.forcedStepTimeout ?? defaults.forcedStepTimeout, {
      zero: true
    })!,
    progressIntervalMs: c.duration("progressInterval", options.progressInterval ?? defaults.progressInterval, {
      zero: true
    })!,
    signalExit: c.oneOf("signalExit", options.signalExit ?? defaults.signalExit, ["success", "conventional"])!,
    forcedExitCode: c.integer("forcedExitCode", options.forcedExitCode ?? defaults.forcedExitCode, 0, 255)!,
    deadlineExitCode: c.integer("deadlineExitCode", options.deadlineExitCode ?? defaults.deadlineExitCode, 0, 255)!,
    ...(c.boolean("interruptProgram", options.interruptProgram) === undefined ? {} : {})
  }))

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

const makeService = (engine: Engine.Engine): Service => {
  const triggerUnsafe = (reason: ShutdownReport.Reason) => Engine.start(engine, reason)
  const remainingMillisUnsafe = () => Deadline.remaining(engine, Engine.now(engine))
  // The deadline a wait or `stepRemaining` runs against: the current step's,
  // else the current phase's; none before the shutdown.
  const currentDeadline = (step: Deadline.CurrentStep | undefined): number =>
    step !== undefined ? Deadline.currentDeadline(step) : engine.current?.window.deadline ?? Infinity
  const wait = <A, E>(condition: Condition<A, E>, options: WaitOptions = {}): Effect.Effect<boolean> =>
    Effect.gen(function*() {
      const pollMs = toMillis(options.pollInterval ?? 100) ?? 100
      const start = yield* Clock.currentTimeMillis
      const step = yield* Deadline.CurrentStep
      const deadline = options.timeout !== undefined
        ? Deadline.after(start, toMillis(options.timeout) ?? 0)
        : engine.startedAt === undefined
        ? Infinity
        : Deadline.waitEnd(engine, currentDeadline(step), start)
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
      Effect.withFiber((fiber) => {
        // The types rule these out; plain JavaScript callers get a clear defect
        // at registration rather than a step that silently has no bound.
        const phase = options.phase ?? "cleanup"
        if (typeof name !== "string" || name.length === 0) {
          return Effect.die(new TypeError(`addStep: name must be a non-empty string, got ${JSON.stringify(name)}`))
        }
        if (!Phase.isPhase(phase)) {
          return Effect.die(
            new TypeError(`addStep "${name}": phase must be one of ${Phase.all.join(", ")}, got ${JSON.stringify(phase)}`)
          )
        }
        const timeoutMs = options.timeout === undefined ? undefined : toMillis(options.timeout)
        if (options.timeout !== undefined && !(timeoutMs! > 0)) {
          return Effect.die(
            new TypeError(`addStep "${name}": timeout must be a duration above zero, got ${JSON.stringify(options.timeout)}`)
          )
        }
        // The step runs in the registering caller's context, minus its span:
        // what the step does belongs to the shutdown's trace, under the step's span.
        const context = Context.omit(Tracer.ParentSpan)(fiber.context) as Context.Context<any>
        return ScopeSteps.add(engine.scopes[phase], name, timeoutMs, () => Effect.provideContext(step, context))
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
    isProgramDoneUnsafe: () => Deferred.isDoneUnsafe(engine.programDone),
    statusUnsafe: () => engine.status,
    status: Effect.sync(() => engine.status),
    remaining: Effect.sync(() => msToDuration(remainingMillisUnsafe())),
    phaseRemaining: Effect.sync(() =>
      msToDuration(
        engine.current === undefined ? remainingMillisUnsafe() : engine.current.window.deadline - Engine.now(engine)
      )
    ),
    stepRemaining: Effect.flatMap(Deadline.CurrentStep, (step) =>
      Effect.sync(() => {
        if (engine.startedAt === undefined) return Duration.infinity
        const now = Engine.now(engine)
        return msToDuration(Deadline.waitEnd(engine, currentDeadline(step), now) - now)
      })),
    wait,
    awaitReport: Deferred.await(engine.report),
    addSection: (name, data) => Effect.sync(() => void engine.sections.set(name, data)),
    addProgress: (name, describe, inFlight) =>
      Effect.sync(() => {
        engine.progress.set(name, describe)
        if (inFlight !== undefined) engine.inFlight.set(name, inFlight)
      }),
    remainingMillisUnsafe,
    snapshotUnsafe: (options) => {
      if (options?.budgetSpent) Engine.spendBudget(engine)
      return Engine.snapshot(engine, engine.exitCode ?? Engine.decideExitCode(engine))
    },
    leftRunningUnsafe: () => Engine.stillRunning(engine).map(({ name, phase }) => ({ name, phase })),
    exitCodeUnsafe: () => engine.exitCode,
    requestExitCodeUnsafe: (code) => Engine.requestExitCode(engine, code),
    exitSettings: engine.settings
  }
}

/**
 * effect's OTLP exporters (`effect/observability`) share a `Flusher`: when one
 * is in the context the Shutdown is built in (the exporter layer provided
 * outside the Shutdown layer, so the shutdown's own spans reach it), its
 * buffers are exported in the `flush` phase, bounded by the phase. The key is
 * effect's own (test/telemetry.test.ts pins it), so the core does not load
 * the HTTP exporter code for programs that do not use it.
 */
class OtlpFlusher extends Context.Service<OtlpFlusher, { readonly flush: Effect.Effect<void> }>()(
  "effect/observability/OtlpExporter/Flusher"
) {}

const flushTelemetry = (service: Service): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(OtlpFlusher), (flusher) =>
    flusher._tag === "None"
      ? Effect.void
      : service.addStep("telemetry: flush", flusher.value.flush, { phase: "flush" }))

/**
 * Every check {@link make} makes on `options` (the budget split, the other
 * settings), without building anything: for a program that wants to refuse a
 * bad setting before it starts at all.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (options: Options = {}): Effect.Effect<void, Budget.BudgetError | ShutdownConfigError> =>
  Effect.andThen(Budget.make(options), readSettings(options))

/**
 * Build a Shutdown in the current Scope. Closing that Scope starts the
 * shutdown (reason `completed`, `failed` or `interrupted` from its Exit, unless
 * it had started already) and waits for the report.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<Service, Budget.BudgetError | ShutdownConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const budget = yield* Budget.make(options)
    const settings = yield* readSettings(options)
    const clock = yield* Clock.Clock
    const engine = Engine.make(budget, settings, clock)
    const service = makeService(engine)
    const sequence = yield* Effect.forkDetach(Sequence.run(engine))
    yield* flushTelemetry(service)
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
 * {@link make}, interrupting the fiber that builds it (the program, when the
 * layer is provided with `Effect.provide`) as soon as the shutdown starts,
 * unless `interruptProgram: false`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInterrupting = (
  options: Options = {}
): Effect.Effect<Service, Budget.BudgetError | ShutdownConfigError, Scope.Scope> =>
  Effect.withFiber((program) =>
    Effect.gen(function*() {
      const service = yield* make(options)
      if (options.interruptProgram === false) return service
      // Its context now, for the logger: a finished fiber's context is not kept.
      const context = program.context
      let programDone = false
      yield* Effect.addFinalizer(() => Effect.sync(() => void (programDone = true)))
      yield* Effect.forkDetach(Effect.flatMap(service.awaitStart, () =>
        Effect.suspend(() => {
          // Not while the program is already finishing: that would turn its
          // success into an interruption.
          if (programDone) return Effect.void
          if (program.pollUnsafe() === undefined) return Effect.sync(() => program.interruptUnsafe())
          // The fiber that built the layer is gone: it was a helper of a parallel
          // build (Layer.mergeAll, Effect.provide([...])), not the program.
          return Effect.logWarning(
            "[winddown] cannot interrupt the program: the Shutdown layer was built inside a parallel layer build " +
              "(Layer.mergeAll or Effect.provide([...])). Provide it on its own, outermost: program.pipe(Effect.provide(ShutdownLive))"
          ).pipe(Effect.provideContext(context))
        })))
      return service
    })
  )

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
export const layer = (
  options: Options = {}
): Layer.Layer<Shutdown | Scope.Scope, Budget.BudgetError | ShutdownConfigError> =>
  Layer.effectContext(Effect.map(makeInterrupting(options), toContext))

/**
 * What the Shutdown layers provide: the service and, as `Scope`, the cleanup phase.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toContext = (service: Service): Context.Context<Shutdown | Scope.Scope> =>
  Context.make(Shutdown, service).pipe(Context.add(Scope.Scope, service.scope("cleanup")))

/**
 * A layer for tests: no program interruption, budgets as given (TestClock
 * drives them under `it.effect`).
 *
 * @since 0.1.0
 * @category testing
 */
export const layerTest = (
  options: Options = {}
): Layer.Layer<Shutdown | Scope.Scope, Budget.BudgetError | ShutdownConfigError> =>
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
  Effect.uninterruptibleMask((restore) => Effect.tap(restore(acquire), (a) => addStep(name, release(a), options)))

/**
 * Hand a layer's resources to the shutdown: the layer is built in the
 * Shutdown's own scope and released as the step `name` of a phase (default
 * `cleanup`; `flush` for telemetry exporters), after the drain, wherever the
 * layer is provided. Without it, a layer provided inside the program (or
 * merged next to the Shutdown layer) is released when the program is
 * interrupted at the first signal, while requests and jobs that use it are
 * still draining.
 *
 * ```ts
 * const DbLive = PgClient.layer({ url }).pipe(Shutdown.releaseAs("db pool"))
 * const TelemetryLive = OtlpLive.pipe(Shutdown.releaseAs("telemetry", { phase: "flush" }))
 * ```
 *
 * Its resources belong to the shutdown from the moment it is built: closing
 * the scope it was built in does not release them early.
 *
 * @since 0.1.0
 * @category layers
 */
export const releaseAs: {
  (name: string, options?: StepOptions): <ROut, E, RIn>(
    self: Layer.Layer<ROut, E, RIn>
  ) => Layer.Layer<ROut, E, RIn | Shutdown>
  <ROut, E, RIn>(self: Layer.Layer<ROut, E, RIn>, name: string, options?: StepOptions): Layer.Layer<ROut, E, RIn | Shutdown>
} = dual(
  (args) => Layer.isLayer(args[0]),
  <ROut, E, RIn>(self: Layer.Layer<ROut, E, RIn>, name: string, options: StepOptions = {}) =>
    Layer.fromBuildMemo((memoMap, _scope) =>
      Effect.gen(function*() {
        const shutdown = yield* Shutdown
        const held = Scope.makeUnsafe()
        yield* shutdown.addStep(name, Effect.suspend(() => Scope.close(held, Exit.void)), options)
        return yield* Layer.buildWithMemoMap(self, memoMap, held).pipe(
          Effect.onError((cause) => Scope.close(held, Exit.failCause(cause)))
        )
      })
    )
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
