/**
 * Signals, the hard-deadline watchdog and exit codes for Node.js: the layer
 * most programs provide.
 *
 * ```ts
 * NodeRuntime.runMain(program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "25 seconds" }))))
 * ```
 *
 * The first signal starts the graceful shutdown and interrupts the program;
 * the second escalates; the third exits at once. Once a shutdown started, the
 * process is gone by the hard deadline whatever holds it: a real, unref'd
 * timer outside the fiber runtime exits when the budget is spent, and once
 * the report is written the process exits after `exitGrace` if something
 * still keeps it alive.
 *
 * A process with a parent on an IPC channel (PM2, a `NodeCluster` primary)
 * also stops on the parent's message: PM2's `"shutdown"` is taken as SIGTERM
 * (option `ipc`).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Runtime, type Scope } from "effect"
import * as Budget from "../Budget.ts"
import { formatMillis, type Input as DurationInput } from "../internal/duration.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Shutdown from "../Shutdown.ts"
import * as ShutdownConfig from "../ShutdownConfig.ts"
import * as Cluster from "./internal/cluster.ts"
import * as Process from "./internal/process.ts"

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
  /** Print the report as one JSON line on stdout at the end (also when the watchdog exits). */
  readonly reportJson?: boolean | undefined
  /** Print a summary of the report for people (a line per phase and section) at the end. */
  readonly reportSummary?: boolean | undefined
  /**
   * Where the report goes: `stdout`, `stderr`, or `logger` (one Info line each
   * through the program's Logger, so a JSON logger ships it; the watchdog,
   * which must exit at once, still writes to stdout).
   */
  readonly reportTo?: "stdout" | "stderr" | "logger" | undefined
  /**
   * End the process by the hard deadline once a shutdown started, whatever
   * holds it (and after `exitGrace` once the report is written).
   */
  readonly watchdog?: boolean | undefined
  /**
   * Once the report is written, how long the process may stay alive (a step
   * left behind, a stray timer or server) before winddown exits it, never past
   * the hard deadline.
   */
  readonly exitGrace?: DurationInput | undefined
  /**
   * When the process has an IPC channel (a `node:cluster` worker, a PM2 app,
   * a forked child), listen on it: PM2's `"shutdown"` message starts the
   * shutdown like SIGTERM, and so does a NodeCluster primary's stop message
   * (its force message escalates). Once the shutdown is over, the channel no
   * longer keeps the process alive.
   */
  readonly ipc?: boolean | undefined
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
  reportTo: "stdout",
  watchdog: true,
  exitGrace: "1 second",
  ipc: true
} as const

const readSettings = (
  options: Options,
  logLine: (line: string) => void
): Effect.Effect<Process.Settings & { readonly ipc: boolean }, ShutdownConfig.ShutdownConfigError> =>
  OptionCheck.check(options, (c) => {
    const reportTo = c.oneOf("reportTo", options.reportTo ?? defaults.reportTo, ["stdout", "stderr", "logger"])!
    const signals = options.signals ?? defaults.signals
    if (!Array.isArray(signals) || signals.length === 0) c.refuse("signals", signals, "at least one signal")
    for (const signal of signals) c.oneOf("signals", signal, allSignals)
    const forceOnSignal = c.integer("forceOnSignal", options.forceOnSignal ?? defaults.forceOnSignal, 2, Infinity)!
    const exitOnSignal = c.integer("exitOnSignal", options.exitOnSignal ?? defaults.exitOnSignal, forceOnSignal + 1, Infinity)!
    return {
      signals: Array.from(new Set(signals)),
      forceOnSignal,
      exitOnSignal,
      repeatWindowMs: c.duration("repeatWindow", options.repeatWindow ?? defaults.repeatWindow, { zero: true })!,
      handleUncaught: c.boolean("handleUncaught", options.handleUncaught) ?? defaults.handleUncaught,
      reportJson: c.boolean("reportJson", options.reportJson) ?? defaults.reportJson,
      reportSummary: c.boolean("reportSummary", options.reportSummary) ?? defaults.reportSummary,
      watchdog: c.boolean("watchdog", options.watchdog) ?? defaults.watchdog,
      exitGraceMs: c.duration("exitGrace", options.exitGrace ?? defaults.exitGrace, { zero: true })!,
      reportTo: reportTo === "logger" ? logLine : (line: string) => Process.writeLine(reportTo, line),
      reportStream: reportTo === "stderr" ? "stderr" : "stdout",
      ipc: c.boolean("ipc", options.ipc) ?? defaults.ipc
    }
  })

/** The pre-stop delay once `auto` is resolved against the environment. */
export const resolvePreStop = (
  preStop: Options["preStop"],
  env: Readonly<Record<string, string | undefined>> = Process.environment()
): DurationInput =>
  (preStop ?? defaults.preStop) === "auto"
    ? (env.KUBERNETES_SERVICE_HOST ? defaults.kubernetesPreStop : "0 seconds")
    : preStop as DurationInput

/** The options the Shutdown gets once `preStop: auto` is resolved against the environment. */
const shutdownOptions = (options: Options): Shutdown.Options => ({ ...options, preStop: resolvePreStop(options.preStop) })

/**
 * Every check {@link layer} makes when it is built, without building it (no
 * listener, no timer): refuse a bad option before the program starts at all.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (
  options: Options = {}
): Effect.Effect<void, Budget.BudgetError | ShutdownConfig.ShutdownConfigError> =>
  Effect.andThen(readSettings(options, () => {}), Shutdown.check(shutdownOptions(options)))

/**
 * Every check {@link layerConfig} makes when it is built (the variables, set
 * but empty included, then the options and budget they add up to), without
 * building it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const checkConfig = (
  options: Options = {}
): Effect.Effect<void, Budget.BudgetError | ShutdownConfig.ShutdownConfigError> =>
  Effect.flatMap(readConfig(options), check)

/** `options` with what the `WINDDOWN_*` variables set over them, remembering which set what. */
const readConfig = (options: Options): Effect.Effect<Options, ShutdownConfig.ShutdownConfigError> =>
  Effect.gen(function*() {
    const empty = ShutdownConfig.checkEmpty(Process.environment())
    if (empty !== undefined) return yield* empty
    const env = yield* ShutdownConfig.fromEnv
    return ShutdownConfig.merge(options, env as Partial<Options>)
  })

/**
 * The Shutdown layer with Node signals. Provides `Shutdown` and, as the
 * program's `Scope`, the `cleanup` phase. Bad options fail the layer with a
 * `ShutdownConfigError` or `BudgetError` naming the value, before anything
 * starts.
 *
 * Provide it outermost: `program.pipe(Effect.provide(layer(options)))`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<Shutdown.Shutdown | Scope.Scope, Budget.BudgetError | ShutdownConfig.ShutdownConfigError> =>
  Layer.effectContext(
    Effect.gen(function*() {
      // The program's logger, as the layer sees it, for reportTo: "logger".
      const context = yield* Effect.context<never>()
      const settings = yield* readSettings(options, (line) =>
        Effect.runForkWith(context)(Effect.logInfo(line).pipe(Effect.annotateLogs({ event: "winddown.report" }))))
      let installed: Process.Installed | undefined
      let listening: Cluster.Listening | undefined
      // Registered before the Shutdown so that it runs after the Shutdown's own
      // finalizer: signals keep escalating until the sequence has finished, and
      // the report is written (and the exit code set) before the program's
      // fiber ends, i.e. before runMain exits the process.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          if (installed === undefined) return
          installed.dispose()
          listening?.dispose()
          if (shutdown.isShuttingDownUnsafe()) installed.reported(yield* shutdown.awaitReport)
        })
      )
      const shutdown = yield* Shutdown.makeInterrupting(shutdownOptions(options))
      installed = Process.install(shutdown, settings)
      const { started, reported } = installed
      if (settings.ipc) listening = yield* listenToParent(shutdown, started)
      yield* Effect.forkDetach(Effect.andThen(shutdown.awaitStart, Effect.sync(started)))
      // Also from here: when the program hangs in its own unwinding, the
      // finalizer above never runs, and the report must still be written.
      yield* Effect.forkDetach(Effect.flatMap(shutdown.awaitReport, (report) => Effect.sync(() => reported(report))))
      yield* Effect.logDebug(`[winddown] listening for ${settings.signals.join(", ")}: ${Budget.format(shutdown.budget)}`)
      return Shutdown.toContext(shutdown)
    })
  )

/**
 * Stop and force requests from a parent (PM2, a NodeCluster primary) act like
 * the first and the second signal, without counting as signals: a Ctrl+C that
 * reaches this process directly as well is still one stop.
 */
const listenToParent = (shutdown: Shutdown.Service, started: () => void) =>
  Effect.gen(function*() {
    const run = Effect.runForkWith(yield* Effect.context<never>())
    const primaryMs = Cluster.primaryTimeoutMs()
    if (primaryMs !== undefined && shutdown.budget.timeoutMs >= primaryMs) {
      yield* Effect.logWarning(
        `[winddown] this worker's ${formatMillis(shutdown.budget.timeoutMs)} budget is not below its cluster primary's ${
          formatMillis(primaryMs)
        }: a worker that needs all of it is killed by the primary first; give the workers a smaller timeout`
      )
    }
    if (Cluster.isWinddownWorker()) {
      // Registered first, so it runs last: after every listener of this worker closed.
      yield* shutdown.addStep("cluster: last handoff", Effect.promise(Cluster.handoffBarrier), {
        phase: "flush",
        timeout: "1 second"
      })
    }
    return Cluster.listen((request) => {
      if (request._tag === "force") {
        if (shutdown.forceUnsafe(request.signal)) {
          run(Effect.logWarning(`[winddown] ${request.signal} forwarded by the cluster primary: forcing shutdown`))
        }
        return
      }
      if (shutdown.triggerUnsafe({ _tag: "signal", signal: request.signal })) {
        started()
        run(Effect.logInfo(
          request.from === "pm2"
            ? "[winddown] PM2 asked to shut down (message \"shutdown\"): treated as SIGTERM"
            : `[winddown] ${request.signal} forwarded by the cluster primary`
        ))
      }
    })
  })

/**
 * {@link layer} with options read from the `WINDDOWN_*` environment variables
 * (see `ShutdownConfig.variables`) through effect's `Config`, so any
 * `ConfigProvider` works. Options given here are defaults the environment
 * overrides. A bad variable (or one set but empty) fails the layer with a
 * `ShutdownConfigError` naming it, before anything starts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Options = {}
): Layer.Layer<Shutdown.Shutdown | Scope.Scope, Budget.BudgetError | ShutdownConfig.ShutdownConfigError> =>
  Layer.unwrap(Effect.map(readConfig(options), layer))

/**
 * A `runMain` teardown that exits with the shutdown's code. The layer already
 * makes the plain `NodeRuntime.runMain(program)` exit right; use this when you
 * pass your own teardown and want to keep that behaviour.
 *
 * @since 0.1.0
 * @category combinators
 */
export const teardown: Runtime.Teardown = (exit, onExit) => {
  const code = Process.currentExitCode()
  return code === undefined ? Runtime.defaultTeardown(exit, onExit) : onExit(code)
}
