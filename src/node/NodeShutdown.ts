/**
 * Signals, the hard-deadline watchdog and exit codes for Node.js: the layer
 * most programs provide.
 *
 * ```ts
 * NodeRuntime.runMain(program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "25 seconds" }))))
 * ```
 *
 * The first signal starts the graceful shutdown and interrupts the program;
 * the second escalates; the third exits at once. A real, unref'd timer outside
 * the fiber runtime exits the process when the budget is spent, even while a
 * finalizer hangs.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Runtime, Scope } from "effect"
import * as Budget from "../Budget.ts"
import { formatMillis, type Input as DurationInput, toMillis } from "../internal/duration.ts"
import { signalNumbers } from "../internal/engine.ts"
import * as Shutdown from "../Shutdown.ts"
import * as ShutdownConfig from "../ShutdownConfig.ts"
import * as ShutdownReport from "../ShutdownReport.ts"
import * as ExitCode from "./internal/exitCode.ts"

/**
 * Signals the layer can listen to. SIGBREAK is Ctrl+Break on Windows; SIGUSR2
 * is what nodemon and some watch tools send.
 *
 * @since 0.1.0
 * @category models
 */
export type Signal = "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGBREAK" | "SIGUSR2" | "SIGQUIT"

/**
 * @since 0.1.0
 * @category models
 */
export const allSignals: ReadonlyArray<Signal> = ["SIGTERM", "SIGINT", "SIGHUP", "SIGBREAK", "SIGUSR2", "SIGQUIT"]

/**
 * Options of {@link layer}: everything of `Shutdown.Options` plus the Node side.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Omit<Shutdown.Options, "preStop"> {
  /** Signals that start the shutdown. */
  readonly signals?: ReadonlyArray<Signal> | undefined
  /** The n-th signal escalates (waits end, drains are interrupted). */
  readonly forceOnSignal?: number | undefined
  /** The n-th signal exits at once with 128 + signal number. */
  readonly exitOnSignal?: number | undefined
  /**
   * The same signal again within this window of the last one counts once: a
   * terminal's Ctrl+C reaches both npm and node, and npm forwards it again,
   * so node sees two SIGINTs a few ms apart for one keypress.
   */
  readonly repeatWindow?: DurationInput | undefined
  /**
   * Pre-stop delay. `auto`: 5 s when `KUBERNETES_SERVICE_HOST` is set (the pod
   * is behind a Service whose endpoints update asynchronously), 0 otherwise.
   * Set 0 when the pod spec already has a preStop sleep.
   */
  readonly preStop?: DurationInput | "auto" | undefined
  /** Turn `uncaughtException` / `unhandledRejection` into an orderly shutdown that exits 1. */
  readonly handleUncaught?: boolean | undefined
  /** Print the report as one JSON line on stdout at the end. */
  readonly reportJson?: boolean | undefined
  /** Print a summary of the report for people (a line per phase and section) at the end. */
  readonly reportSummary?: boolean | undefined
  /** Exit the process at the hard deadline even when a finalizer hangs. */
  readonly watchdog?: boolean | undefined
}

/**
 * Defaults of the Node options (budget defaults: `Budget.defaults`; others:
 * `Shutdown.defaults`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  signals: ["SIGTERM", "SIGINT"] as ReadonlyArray<Signal>,
  forceOnSignal: 2,
  exitOnSignal: 3,
  repeatWindow: "100 millis",
  preStop: "auto",
  kubernetesPreStop: "5 seconds",
  handleUncaught: false,
  reportJson: false,
  reportSummary: false,
  watchdog: true
} as const

const invalid = (message: string) => Effect.fail(new Budget.BudgetError({ reason: "InvalidOption", message }))

const validate = (options: Options): Effect.Effect<void, Budget.BudgetError> =>
  Effect.suspend(() => {
    const signals = options.signals ?? defaults.signals
    if (signals.length === 0) return invalid("signals must name at least one signal")
    for (const signal of signals) {
      if (!allSignals.includes(signal)) {
        return invalid(`signals: ${JSON.stringify(signal)} is not one of ${allSignals.join(", ")}`)
      }
    }
    const force = options.forceOnSignal ?? defaults.forceOnSignal
    const exit = options.exitOnSignal ?? defaults.exitOnSignal
    if (!Number.isInteger(force) || force < 2) return invalid(`forceOnSignal must be an integer of 2 or more, got ${force}`)
    if (!Number.isInteger(exit) || exit <= force) {
      return invalid(`exitOnSignal must be an integer above forceOnSignal (${force}), got ${exit}`)
    }
    const repeatWindowMs = toMillis(options.repeatWindow ?? defaults.repeatWindow)
    if (!(repeatWindowMs! >= 0) || repeatWindowMs === Infinity) {
      return invalid(`repeatWindow must be a finite duration, got ${JSON.stringify(options.repeatWindow)}`)
    }
    return Effect.void
  })

/** The pre-stop delay once `auto` is resolved against the environment. */
export const resolvePreStop = (
  preStop: Options["preStop"],
  env: Readonly<Record<string, string | undefined>> = process.env
): DurationInput =>
  (preStop ?? defaults.preStop) === "auto"
    ? (env.KUBERNETES_SERVICE_HOST ? defaults.kubernetesPreStop : "0 seconds")
    : preStop as DurationInput

const describeError = (u: unknown) => (u instanceof Error ? u.stack ?? u.message : String(u))

/**
 * Install the Node side on a Shutdown: signal listeners (prepended, so they
 * run before `runMain`'s and see every signal), the watchdog, the exit code.
 * Everything is removed when the surrounding Scope closes; the exit code
 * stays decided.
 */
const install = (
  options: Options,
  shutdown: Shutdown.Service,
  onStart: Array<() => void>
): { readonly dispose: Effect.Effect<void> } => {
  const signals = options.signals ?? defaults.signals
  const forceOn = options.forceOnSignal ?? defaults.forceOnSignal
  const exitOn = options.exitOnSignal ?? defaults.exitOnSignal
  const repeatWindowMs = toMillis(options.repeatWindow ?? defaults.repeatWindow)!
  let count = 0
  let last: { readonly signal: string; readonly at: number } | undefined
  const onSignal = (signal: NodeJS.Signals) => {
    const now = performance.now()
    if (last !== undefined && last.signal === signal && now - last.at < repeatWindowMs) return
    last = { signal, at: now }
    count++
    if (count >= exitOn) {
      ExitCode.exitNow(128 + (signalNumbers[signal] ?? 0), `[winddown] ${signal} (signal ${count}): exiting now`)
    } else if (count >= forceOn) {
      process.stderr.write(`[winddown] ${signal} (signal ${count}): forcing shutdown; signal ${exitOn} exits at once\n`)
      shutdown.forceUnsafe(signal)
    } else {
      shutdown.triggerUnsafe({ _tag: "signal", signal })
    }
  }
  const onUncaught = (tag: "uncaughtException" | "unhandledRejection") => (error: unknown) => {
    process.stderr.write(`[winddown] ${tag}: ${describeError(error)}\n`)
    shutdown.triggerUnsafe({ _tag: tag, message: error instanceof Error ? error.message : String(error) })
  }
  const uncaught = onUncaught("uncaughtException")
  const unhandled = onUncaught("unhandledRejection")
  let watchdog: ReturnType<typeof setTimeout> | undefined

  const dispose = Effect.gen(function*() {
    for (const signal of signals) process.removeListener(signal, onSignal)
    if (options.handleUncaught) {
      process.removeListener("uncaughtException", uncaught)
      process.removeListener("unhandledRejection", unhandled)
    }
    if (watchdog !== undefined) clearTimeout(watchdog)
    if (!shutdown.isShuttingDownUnsafe()) return
    const report = yield* shutdown.awaitReport
    // A program that completed or failed by itself already ends with the
    // right code; a shutdown started from outside decides it here.
    if (report.reason._tag !== "completed" && report.reason._tag !== "failed") ExitCode.decide(report.exitCode)
    if (options.reportSummary) process.stdout.write(`${ShutdownReport.formatSummary(report)}\n`)
    if (options.reportJson) process.stdout.write(`${ShutdownReport.toJsonLine(report)}\n`)
  })
  for (const signal of signals) process.prependListener(signal, onSignal)
  if (options.handleUncaught) {
    process.prependListener("uncaughtException", uncaught)
    process.prependListener("unhandledRejection", unhandled)
  }
  if (options.watchdog ?? defaults.watchdog) {
    onStart.push(() => {
      watchdog = setTimeout(() => {
        ExitCode.exitNow(
          options.deadlineExitCode ?? Shutdown.defaults.deadlineExitCode,
          `[winddown] hard deadline: the ${
            formatMillis(shutdown.budget.timeoutMs)
          } budget is spent during ${shutdown.statusUnsafe()}; exiting`
        )
      }, Math.max(0, shutdown.remainingMillisUnsafe()))
      watchdog.unref()
    })
  }
  return { dispose }
}

/**
 * The Shutdown layer with Node signals. Provides `Shutdown` and, as the
 * program's `Scope`, the `cleanup` phase. Bad options fail the layer with a
 * `BudgetError` naming the value, before anything starts.
 *
 * Provide it outermost: `program.pipe(Effect.provide(layer(options)))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Shutdown.Shutdown | Scope.Scope, Budget.BudgetError> =>
  Layer.effectContext(
    Effect.gen(function*() {
      yield* validate(options)
      const onStart: Array<() => void> = []
      let installed: { readonly dispose: Effect.Effect<void> } | undefined
      // Registered before the Shutdown so that it runs after the Shutdown's own
      // finalizer: signals keep escalating until the sequence has finished.
      yield* Effect.addFinalizer(() => installed?.dispose ?? Effect.void)
      const shutdown = yield* Shutdown.makeInterrupting(
        { ...options, preStop: resolvePreStop(options.preStop) },
        () => onStart.forEach((f) => f())
      )
      installed = install(options, shutdown, onStart)
      yield* Effect.logDebug(
        `[winddown] listening for ${(options.signals ?? defaults.signals).join(", ")}: ${
          Budget.format(shutdown.budget)
        }`
      )
      return Context.make(Shutdown.Shutdown, shutdown).pipe(Context.add(Scope.Scope, shutdown.scope("cleanup")))
    })
  )

/**
 * {@link layer} with options read from `WINDDOWN_*` environment variables
 * (see `ShutdownConfig.variables`). Options given here are defaults the
 * environment overrides. A bad variable fails the layer with a
 * `ShutdownConfigError` naming it, before anything starts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Options = {}
): Layer.Layer<Shutdown.Shutdown | Scope.Scope, Budget.BudgetError | ShutdownConfig.ShutdownConfigError> =>
  Layer.unwrap(
    Effect.map(ShutdownConfig.fromEnv, (env) => layer({ ...options, ...env } as Options))
  )

/**
 * A `runMain` teardown that exits with the shutdown's code. The layer already
 * makes the plain `NodeRuntime.runMain(program)` exit right; use this when you
 * pass your own teardown and want to keep that behaviour.
 *
 * @since 0.1.0
 * @category combinators
 */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  const code = ExitCode.current()
  return code === undefined ? Runtime.defaultTeardown(exit, onExit) : onExit(code)
}
