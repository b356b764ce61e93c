/**
 * Cluster mode for one host: a `node:cluster` primary runs N workers that
 * share the port, each an ordinary program under `NodeShutdown`, and stops or
 * replaces them without dropping a request. (This is Node's process cluster,
 * not `effect/cluster`'s sharding.)
 *
 * ```ts
 * const worker = Layer.launch(HttpLive).pipe(Effect.provide(NodeShutdown.layer({ timeout: "20 seconds" })))
 * NodeCluster.runMain(worker, { workers: 4, timeout: "25 seconds" })   // the same file is primary and workers
 * ```
 *
 * - **Ready handshake**: a worker is ready when its program says so with
 *   {@link ready} (or {@link markStarted}, which also marks the Health
 *   started); the primary waits for it up to `readyTimeout`. The message is
 *   PM2's `process.send("ready")`, so the same worker runs under PM2's
 *   `wait_ready`, and a primary started by PM2 sends it once all its workers
 *   are ready.
 * - **Stop** (SIGTERM, SIGINT, or PM2's `"shutdown"` message to the primary):
 *   the primary asks every worker to stop, each runs its own phases, and the
 *   primary's budget covers them all: a worker still running when it ends is
 *   SIGKILLed, and the primary exits 124. Nothing outlives the primary.
 * - **Reload** (SIGHUP, or {@link reload}): workers are replaced one at a
 *   time: a new one starts, and only once it is ready is an old one stopped
 *   gracefully. A new worker that does not become ready aborts the reload and
 *   keeps the old ones. A reload asked for during a reload is queued (one at
 *   most) and runs when the current one ends.
 * - **Crash**: a worker that exits by itself is restarted with a backoff.
 *
 * @since 0.1.0
 */
import { NodeRuntime } from "@effect/platform-node"
import { Context, Data, Deferred, Effect, Exit, FiberSet, Layer, Result, type Scope } from "effect"
import * as os from "node:os"
import * as Budget from "../Budget.ts"
import * as Health from "../Health.ts"
import * as Deadline from "../internal/deadline.ts"
import { formatMillis, type Input as DurationInput } from "../internal/duration.ts"
import * as ExitCode from "../internal/exitCode.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"
import * as Cluster from "./internal/cluster.ts"
import * as NodeShutdown from "./NodeShutdown.ts"

/**
 * Options of {@link layer} and {@link runMain}: the cluster's own, plus the
 * primary's NodeShutdown options (its budget, signals, report).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends
  Pick<
    NodeShutdown.Options,
    | "timeout"
    | "signals"
    | "forceOnSignal"
    | "exitOnSignal"
    | "repeatWindow"
    | "signalExit"
    | "forcedExitCode"
    | "deadlineExitCode"
    | "forcedStepTimeout"
    | "progressInterval"
    | "reportJson"
    | "reportSummary"
    | "handleUncaught"
    | "exitGrace"
  >
{
  /** How many workers. Default: one per CPU (`os.availableParallelism()`). */
  readonly workers?: number | undefined
  /** The signal that replaces the workers one at a time; `"none"` for no reload signal. Default SIGHUP. */
  readonly reloadSignal?: NodeShutdown.Signal | "none" | undefined
  /** How long a new worker may take to say it is ready. Default 30 seconds. */
  readonly readyTimeout?: DurationInput | undefined
  /** The wait before restarting a worker that exited by itself; doubles for each crash in a row. Default 1 second. */
  readonly restartDelay?: DurationInput | undefined
  /** The most the restart wait grows to; a worker that ran this long resets the count. Default 30 seconds. */
  readonly maxRestartDelay?: DurationInput | undefined
}

/**
 * The defaults, in one place (the README's table is checked against them).
 * The primary's budget options take NodeShutdown's defaults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  workers: "one per CPU",
  timeout: Budget.defaults.timeout,
  signals: NodeShutdown.defaults.signals.join(","),
  reloadSignal: "SIGHUP",
  readyTimeout: "30 seconds",
  restartDelay: "1 second",
  maxRestartDelay: "30 seconds"
} as const

/**
 * What the primary's phases other than `drain` get: it has nothing of its own
 * to drain but its workers, so they get almost the whole budget.
 */
const primaryPhaseMs = (timeoutMs: number) => Math.max(1, Math.min(100, Math.floor(timeoutMs / 100)))

/**
 * One worker as the primary sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerInfo {
  /** Its position, 0 to `workers - 1`: a replacement takes the place of the worker it replaces. */
  readonly slot: number
  /** `node:cluster`'s worker id. */
  readonly id: number
  readonly pid: number
  readonly state: "starting" | "ready" | "stopping"
}

/**
 * One worker replaced by a reload.
 *
 * @since 0.1.0
 * @category models
 */
export interface Replacement {
  readonly slot: number
  readonly oldPid: number
  readonly newPid: number
  /** From the new worker's start to its ready message. */
  readonly readyMs: number
  /** From the stop request to the old worker's exit. */
  readonly stopMs: number
  /** The old worker's exit code (null when a signal ended it). */
  readonly exitCode: number | null
}

/**
 * How a reload ended: every worker replaced, aborted (a new worker was not
 * ready; the old ones that were not replaced yet keep serving), or refused
 * (the cluster is starting or stopping).
 *
 * @since 0.1.0
 * @category models
 */
export type ReloadResult =
  | { readonly _tag: "Reloaded"; readonly replaced: ReadonlyArray<Replacement>; readonly durationMs: number }
  | {
    readonly _tag: "Aborted"
    readonly replaced: ReadonlyArray<Replacement>
    readonly durationMs: number
    readonly message: string
  }
  | { readonly _tag: "Refused"; readonly message: string }

/**
 * The initial workers did not all become ready: one exited first, or did not
 * say it was ready within `readyTimeout`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ClusterError extends Data.TaggedError("ClusterError")<{
  readonly reason: "NotReady" | "Exited"
  readonly message: string
}> {
  constructor(args: { readonly reason: ClusterError["reason"]; readonly message: string }) {
    super(args)
    // A worker that cannot start is reported in one line, like a bad option.
    this.stack = `${this._tag}: ${this.message}`
  }
}

/**
 * The running cluster, in the primary.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  /** Replace the workers one at a time (what the reload signal does); completes when the reload ended. */
  readonly reload: Effect.Effect<ReloadResult>
  /** The workers now, by slot. */
  readonly workers: Effect.Effect<ReadonlyArray<WorkerInfo>>
}

/**
 * The Cluster service tag (in the primary).
 *
 * @since 0.1.0
 * @category services
 */
export class NodeCluster extends Context.Service<NodeCluster, Service>()("winddown/node/NodeCluster") {}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

interface Settings {
  readonly workers: number
  readonly timeoutMs: number
  readonly reloadSignal: NodeShutdown.Signal | undefined
  readonly readyTimeoutMs: number
  readonly restartDelayMs: number
  readonly maxRestartDelayMs: number
}

const readSettings = (options: Options): Effect.Effect<Settings, ShutdownConfigError> =>
  OptionCheck.check(options, (c) => {
    const workers = c.integer("workers", options.workers ?? os.availableParallelism(), 1, 1024)!
    const timeoutMs = c.duration("timeout", options.timeout ?? defaults.timeout)!
    const reload = c.oneOf("reloadSignal", options.reloadSignal ?? defaults.reloadSignal, [
      ...NodeShutdown.allSignals,
      "none"
    ])!
    const signals = options.signals ?? NodeShutdown.defaults.signals
    if (reload !== "none" && Array.isArray(signals) && signals.includes(reload)) {
      c.refuse("reloadSignal", reload, `a signal that does not stop the cluster (signals: ${signals.join(", ")})`)
    }
    const restartDelayMs = c.duration("restartDelay", options.restartDelay ?? defaults.restartDelay, { zero: true })!
    const maxRestartDelayMs = c.duration("maxRestartDelay", options.maxRestartDelay ?? defaults.maxRestartDelay)!
    if (maxRestartDelayMs < restartDelayMs) {
      c.refuse("maxRestartDelay", options.maxRestartDelay ?? defaults.maxRestartDelay, `at least restartDelay (${formatMillis(restartDelayMs)})`)
    }
    return {
      workers,
      timeoutMs,
      reloadSignal: reload === "none" ? undefined : reload,
      readyTimeoutMs: c.duration("readyTimeout", options.readyTimeout ?? defaults.readyTimeout)!,
      restartDelayMs,
      maxRestartDelayMs
    }
  })

/** The primary's NodeShutdown: its budget for the workers, no pre-stop delay of its own (each worker has its own). */
const primaryShutdownOptions = (options: Options, settings: Settings): NodeShutdown.Options => {
  const {
    workers: _w,
    reloadSignal: _r,
    readyTimeout: _rt,
    restartDelay: _rd,
    maxRestartDelay: _mr,
    ...shutdownOptions
  } = options
  const phaseMs = primaryPhaseMs(settings.timeoutMs)
  return {
    ...shutdownOptions,
    timeout: settings.timeoutMs,
    preStop: 0,
    readiness: phaseMs,
    stopAccepting: phaseMs,
    cleanup: phaseMs,
    flush: phaseMs
  }
}

// ---------------------------------------------------------------------------
// The primary
// ---------------------------------------------------------------------------

interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

interface Member {
  readonly slot: number
  readonly forked: Cluster.Forked
  readonly startedAt: number
  state: "starting" | "ready" | "stopping" | "exited"
  readyAt: number | undefined
  /** The primary asked it to stop, or killed it: its exit is not a crash. */
  expected: boolean
  /** Asked to stop by the shutdown: its exit code counts for the primary's. */
  stoppedByShutdown: boolean
  readonly ready: Deferred.Deferred<void, Exited>
  readonly exited: Deferred.Deferred<Exited>
  exit: Exited | undefined
}

interface Slot {
  readonly index: number
  current: Member | undefined
  /** Crashes in a row, for the restart backoff. */
  crashes: number
  /** A reload is replacing this slot's worker: a crash of the old one needs no restart. */
  replacing: boolean
}

const describeExit = (exit: Exited): string =>
  exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`

/** What a shell would report: the code, or 128 + the signal's number (exitCode.ts). */
const exitCodeOf = (exit: Exited): number => exit.code ?? (exit.signal === null ? 128 : ExitCode.conventional(exit.signal))

const elapsed = (since: number) => performance.now() - since

type ReadyOutcome = { readonly _tag: "Ready" } | { readonly _tag: "Exited"; readonly exit: Exited } | {
  readonly _tag: "TimedOut"
}

/**
 * The supervisor, in the current Scope, on the current Shutdown: starts the
 * workers and waits until all are ready, then restarts crashed ones and
 * reloads on request until the shutdown, which stops them all.
 */
const make = (settings: Settings): Effect.Effect<Service, ClusterError, Shutdown.Shutdown | Scope.Scope> =>
  Effect.gen(function*() {
    const shutdown = yield* Shutdown.Shutdown
    const context = yield* Effect.context<never>()
    const log = (effect: Effect.Effect<void>) => void Effect.runForkWith(context)(effect)
    const background = yield* FiberSet.makeRuntime<never>()
    const members = new Set<Member>()
    const slots: Array<Slot> = Array.from({ length: settings.workers }, (_, index) => ({
      index,
      current: undefined,
      crashes: 0,
      replacing: false
    }))
    let started = false
    let stopping = false
    let reloads = 0
    let restarts = 0
    const stopped: Array<{ readonly pid: number; readonly code: number | null; readonly signal: string | null }> = []
    let killed = 0

    const workerEnv = {
      [Cluster.env.timeout]: String(settings.timeoutMs),
      ...(settings.reloadSignal === undefined ? {} : { [Cluster.env.reloadSignal]: settings.reloadSignal })
    }

    const spawn = (slot: Slot): Member => {
      const ready = Deferred.makeUnsafe<void, Exited>()
      const exited = Deferred.makeUnsafe<Exited>()
      const member: Member = {
        slot: slot.index,
        startedAt: performance.now(),
        state: "starting",
        readyAt: undefined,
        expected: false,
        stoppedByShutdown: false,
        ready,
        exited,
        exit: undefined,
        forked: Cluster.fork(workerEnv, {
          ready: () => {
            if (member.state !== "starting") return
            member.state = "ready"
            member.readyAt = performance.now()
            Deferred.doneUnsafe(ready, Exit.void)
          },
          exit: (code, signal) => {
            const exit = { code, signal }
            const wasReady = member.state === "ready"
            member.state = "exited"
            member.exit = exit
            members.delete(member)
            Deferred.doneUnsafe(ready, Exit.fail(exit))
            Deferred.doneUnsafe(exited, Exit.succeed(exit))
            if (member.stoppedByShutdown) stopped.push({ pid: member.forked.pid, code, signal })
            if (!member.expected && !stopping && wasReady) crashed(member, exit)
          }
        })
      }
      members.add(member)
      return member
    }

    const awaitReady = (member: Member): Effect.Effect<ReadyOutcome> =>
      Deferred.await(member.ready).pipe(
        Effect.timeoutOption(settings.readyTimeoutMs),
        Effect.result,
        Effect.map((result): ReadyOutcome =>
          Result.isFailure(result)
            ? { _tag: "Exited", exit: result.failure }
            : result.success._tag === "Some"
            ? { _tag: "Ready" }
            : { _tag: "TimedOut" }
        )
      )

    const whyNotReady = (outcome: ReadyOutcome) =>
      outcome._tag === "Exited"
        ? `${describeExit(outcome.exit)} before it was ready`
        : `was not ready within ${formatMillis(settings.readyTimeoutMs)}`

    /**
     * Ask a worker to stop. A ready worker gets the stop message (its
     * NodeShutdown listens for it); one still starting may not listen yet, and
     * a message nobody listens to is lost, so it gets a real SIGTERM, which
     * whatever runs by then handles (NodeShutdown, runMain, or Node's default).
     */
    const askToStop = (member: Member, signal: string) => {
      const starting = member.state === "starting"
      if (member.state !== "exited") member.state = "stopping"
      if (starting) member.forked.kill("SIGTERM")
      else member.forked.request({ _tag: "stop", signal })
    }

    /**
     * Stop one worker gracefully (as SIGTERM would): wait for its exit within
     * the cluster's budget, then SIGKILL it.
     */
    const retire = (member: Member, signal: string): Effect.Effect<Exited> =>
      Effect.suspend(() => {
        member.expected = true
        askToStop(member, signal)
        return Deferred.await(member.exited).pipe(
          Effect.timeoutOption(settings.timeoutMs),
          Effect.flatMap((exit) => {
            if (exit._tag === "Some") return Effect.succeed(exit.value)
            member.forked.kill("SIGKILL")
            return Effect.andThen(
              Effect.logWarning(
                `[winddown] cluster: worker ${member.forked.pid} did not exit within ${formatMillis(settings.timeoutMs)}: SIGKILLed`
              ),
              Deferred.await(member.exited)
            )
          })
        )
      })

    // --- crashes -----------------------------------------------------------

    const restartDelay = (crashes: number) =>
      Math.min(settings.maxRestartDelayMs, settings.restartDelayMs * 2 ** Math.max(0, crashes - 1))

    const restart = (slot: Slot): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (!stopping) {
          const delay = restartDelay(slot.crashes)
          yield* Effect.sleep(delay)
          if (stopping || slot.current !== undefined) return
          const member = spawn(slot)
          const outcome = yield* awaitReady(member)
          if (outcome._tag === "Ready") {
            if (stopping) return
            slot.current = member
            restarts++
            yield* Effect.logInfo(
              `[winddown] cluster: worker ${member.forked.pid} (slot ${slot.index}) restarted, ready in ${
                formatMillis(member.readyAt! - member.startedAt)
              }`
            )
            return
          }
          member.expected = true
          background(retire(member, "SIGTERM"))
          slot.crashes++
          yield* Effect.logError(
            `[winddown] cluster: the restarted worker ${member.forked.pid} (slot ${slot.index}) ${
              whyNotReady(outcome)
            }: trying again in ${formatMillis(restartDelay(slot.crashes))}`
          )
        }
      })

    const crashed = (member: Member, exit: Exited) => {
      const slot = slots[member.slot]!
      if (slot.current !== member) return
      slot.current = undefined
      const livedMs = elapsed(member.startedAt)
      slot.crashes = livedMs >= settings.maxRestartDelayMs ? 1 : slot.crashes + 1
      if (slot.replacing) {
        log(Effect.logWarning(
          `[winddown] cluster: worker ${member.forked.pid} (slot ${slot.index}) ${describeExit(exit)} while being replaced`
        ))
        return
      }
      log(Effect.logError(
        `[winddown] cluster: worker ${member.forked.pid} (slot ${slot.index}) ${describeExit(exit)} without being asked to stop: restarting it in ${
          formatMillis(restartDelay(slot.crashes))
        } (${slot.crashes} crash${slot.crashes === 1 ? "" : "es"} in a row)`
      ))
      background(restart(slot))
    }

    // --- reload ------------------------------------------------------------

    const pidsOf = (list: Iterable<Slot>) =>
      Array.from(list, (s) => s.current?.forked.pid).filter((p) => p !== undefined).join(", ")

    const reloadOnce: Effect.Effect<ReloadResult> = Effect.gen(function*() {
      const start = performance.now()
      const replaced: Array<Replacement> = []
      reloads++
      yield* Effect.logInfo(`[winddown] cluster: reloading ${settings.workers} workers one at a time`)
      for (const slot of slots) {
        if (stopping) break
        const old = slot.current
        if (old === undefined || old.state !== "ready") {
          yield* Effect.logInfo(`[winddown] cluster: slot ${slot.index} is restarting: its new worker runs the new code already`)
          continue
        }
        slot.replacing = true
        const fresh = spawn(slot)
        const outcome = yield* awaitReady(fresh).pipe(Effect.ensuring(Effect.sync(() => void (slot.replacing = false))))
        if (outcome._tag !== "Ready") {
          fresh.expected = true
          background(retire(fresh, "SIGTERM"))
          const keeping = slots.filter((s) => s.current !== undefined)
          const message = `reload aborted: the new worker ${fresh.forked.pid} (slot ${slot.index}) ${
            whyNotReady(outcome)
          }; ${replaced.length} of ${settings.workers} replaced, keeping the workers ${pidsOf(keeping)}`
          yield* Effect.logError(`[winddown] cluster: ${message}`)
          if (slot.current === undefined && !stopping) background(restart(slot))
          return { _tag: "Aborted", replaced, durationMs: elapsed(start), message }
        }
        slot.current = fresh
        const stopAt = performance.now()
        // It may have exited while the new one started (state changes under us).
        const exit = old.exit ?? (yield* retire(old, "SIGTERM"))
        const replacement: Replacement = {
          slot: slot.index,
          oldPid: old.forked.pid,
          newPid: fresh.forked.pid,
          readyMs: fresh.readyAt! - fresh.startedAt,
          stopMs: performance.now() - stopAt,
          exitCode: exit.code
        }
        replaced.push(replacement)
        yield* Effect.logInfo(
          `[winddown] cluster: worker ${old.forked.pid} replaced by ${fresh.forked.pid} (slot ${slot.index}): the new one was ready in ${
            formatMillis(replacement.readyMs)
          }, the old one ${describeExit(exit)} after ${formatMillis(replacement.stopMs)}`
        )
      }
      if (stopping) {
        return { _tag: "Aborted", replaced, durationMs: elapsed(start), message: "the cluster is shutting down" }
      }
      yield* Effect.logInfo(
        `[winddown] cluster: reload complete in ${formatMillis(elapsed(start))}: ${replaced.length} of ${settings.workers} workers replaced`
      )
      return { _tag: "Reloaded", replaced, durationMs: elapsed(start) }
    })

    let running: Deferred.Deferred<ReloadResult> | undefined
    let queued: Deferred.Deferred<ReloadResult> | undefined

    const startReload = (done: Deferred.Deferred<ReloadResult>) => {
      running = done
      background(
        reloadOnce.pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              Deferred.doneUnsafe(
                done,
                Exit.isSuccess(exit)
                  ? exit
                  : Exit.succeed({ _tag: "Refused", message: "the reload was interrupted: the cluster is shutting down" })
              )
              running = undefined
              const next = queued
              queued = undefined
              if (next !== undefined) {
                if (stopping) Deferred.doneUnsafe(next, Exit.succeed({ _tag: "Refused", message: "the cluster is shutting down" }))
                else startReload(next)
              }
            })
          )
        )
      )
    }

    /** A reload now, or, during one, once it ended: requests during a reload share one queued reload. */
    const requestReload = (source: string): Effect.Effect<Deferred.Deferred<ReloadResult>> =>
      Effect.gen(function*() {
        const refused = (message: string) =>
          Effect.andThen(
            Effect.logWarning(`[winddown] cluster: ${source}: reload refused: ${message}`),
            Deferred.make<ReloadResult>().pipe(Effect.tap((d) => Deferred.succeed(d, { _tag: "Refused", message })))
          )
        if (stopping) return yield* refused("the cluster is shutting down")
        if (!started) return yield* refused("the workers are still starting")
        if (running === undefined) {
          yield* Effect.logInfo(`[winddown] cluster: ${source}: reload`)
          const done = yield* Deferred.make<ReloadResult>()
          startReload(done)
          return done
        }
        if (queued === undefined) {
          queued = yield* Deferred.make<ReloadResult>()
          yield* Effect.logInfo(`[winddown] cluster: ${source} during a reload: queued, it starts when this one ends`)
        } else {
          yield* Effect.logInfo(`[winddown] cluster: ${source}: a reload is queued already; this one joins it`)
        }
        return queued
      })

    // --- the shutdown --------------------------------------------------------

    const alive = () => Array.from(members).filter((m) => m.state !== "exited")

    /** At the start of the shutdown: no more restarts or reloads, every worker asked to stop. */
    const beginStop = (reason: ShutdownReport.Reason) =>
      Effect.suspend(() => {
        stopping = true
        const signal = reason._tag === "signal" ? reason.signal : "SIGTERM"
        const list = alive()
        for (const member of list) {
          member.expected = true
          // A worker still starting has no work to lose: however it ends (a
          // terminal's signal reaches it before its handlers exist), its exit
          // does not make the primary's code.
          member.stoppedByShutdown = member.state !== "starting"
          askToStop(member, signal)
        }
        return list.length === 0
          ? Effect.void
          : Effect.logInfo(
            `[winddown] cluster: asking ${list.length} worker${list.length === 1 ? "" : "s"} to stop (${signal}): ${
              list.map((m) => m.forked.pid).join(", ")
            }`
          )
      })

    /** A second signal: each worker escalates its own shutdown, as if it had got it. */
    const forward = Effect.sync(() => {
      const signal = shutdown.snapshotUnsafe().forced?.signal ?? "SIGTERM"
      for (const member of alive()) member.forked.request({ _tag: "force", signal })
    })

    /** SIGKILL what is left, wait for the kernel to confirm, and make the exit code say so. */
    const killSurvivors = Effect.suspend(() => {
      const list = alive()
      if (list.length === 0) return Effect.void
      for (const member of list) member.forked.kill("SIGKILL")
      killed += list.length
      shutdown.requestExitCodeUnsafe(shutdown.exitSettings.deadlineExitCode)
      return Effect.logWarning(
        `[winddown] cluster: ${list.length} worker${list.length === 1 ? "" : "s"} still running at the end of the budget: SIGKILLed (${
          list.map((m) => m.forked.pid).join(", ")
        })`
      ).pipe(Effect.andThen(Effect.forEach(list, (m) => Deferred.await(m.exited)).pipe(Effect.timeoutOption(1000))))
    })

    const awaitAll = Effect.suspend(() => Effect.forEach(alive(), (m) => Deferred.await(m.exited), { discard: true }))

    /**
     * The drain step: every worker exits by itself, or is SIGKILLed when the
     * step is cut (the end of the budget; after a second signal, once the
     * forwarded escalation had the step's grace).
     */
    const stopWorkers = Effect.gen(function*() {
      yield* awaitAll
      const unclean = stopped.find((s) => s.code !== 0)
      if (unclean !== undefined) {
        const code = exitCodeOf({ code: unclean.code, signal: unclean.signal as NodeJS.Signals | null })
        shutdown.requestExitCodeUnsafe(code)
        yield* Effect.logWarning(
          `[winddown] cluster: worker ${unclean.pid} did not stop cleanly (${
            describeExit({ code: unclean.code, signal: unclean.signal as NodeJS.Signals | null })
          }): the primary exits with ${code}`
        )
      }
    }).pipe(
      Effect.onInterrupt(() =>
        Effect.gen(function*() {
          if (shutdown.isForcedUnsafe()) {
            // The grace an interrupted step gets, less a moment to kill and confirm.
            const step = yield* Deadline.CurrentStep
            const now = yield* Effect.clockWith((c) => c.currentTimeMillis)
            const grace = step === undefined ? 0 : Deadline.abandonGrace(step.times, now) - 100
            if (grace > 0) yield* Effect.timeoutOption(awaitAll, grace)
          }
          yield* killSurvivors
        })
      )
    )

    yield* shutdown.addStep("cluster: stop workers", stopWorkers, { phase: "drain" })
    yield* shutdown.addSection("cluster", () => ({
      workers: settings.workers,
      reloads,
      restarts,
      stopped: stopped.length,
      exitCodes: stopped.map((s) => s.code ?? s.signal ?? "unknown").join(","),
      killed
    }))
    yield* shutdown.addProgress("cluster", () => {
      const list = alive()
      return list.length === 0 ? undefined : `${list.length} workers running (${list.map((m) => m.forked.pid).join(", ")})`
    }, () => alive().length)
    yield* Effect.forkDetach(Effect.flatMap(shutdown.awaitStart, beginStop))
    yield* Effect.forkDetach(Effect.andThen(shutdown.awaitForced, forward))

    if (settings.reloadSignal !== undefined) {
      const signal = settings.reloadSignal
      // Listening until the shutdown's report: Node's default for SIGHUP
      // would end the primary in the middle of stopping its workers.
      yield* Effect.acquireRelease(
        Effect.sync(() => Cluster.onSignal(signal, () => log(Effect.asVoid(requestReload(signal))))),
        (dispose) =>
          shutdown.isShuttingDownUnsafe()
            ? Effect.asVoid(Effect.forkDetach(Effect.andThen(shutdown.awaitReport, Effect.sync(dispose))))
            : Effect.sync(dispose)
      )
    }

    // --- start ---------------------------------------------------------------

    const start = performance.now()
    const first = slots.map(spawn)
    const outcomes = yield* Effect.forEach(first, awaitReady, { concurrency: "unbounded" })
    const failedAt = outcomes.findIndex((o) => o._tag !== "Ready")
    if (failedAt >= 0) {
      const member = first[failedAt]!
      const outcome = outcomes[failedAt]!
      return yield* new ClusterError({
        reason: outcome._tag === "Exited" ? "Exited" : "NotReady",
        message: `worker ${member.forked.pid} (slot ${failedAt}) ${whyNotReady(outcome)}`
      })
    }
    first.forEach((member, i) => void (slots[i]!.current = member))
    started = true
    const pid = Cluster.pid()
    yield* Effect.logInfo(
      `[winddown] cluster: ${settings.workers} workers ready in ${formatMillis(elapsed(start))} (${pidsOf(slots)}); primary ${pid}: ${
        settings.reloadSignal === undefined ? "" : `reload with kill -${settings.reloadSignal.slice(3)} ${pid}, `
      }stop with kill -TERM ${pid}`
    )
    // PM2's wait_ready, when PM2 started this primary (fork mode).
    Cluster.sendReady()

    return {
      reload: Effect.flatMap(requestReload("reload requested"), Deferred.await),
      workers: Effect.sync(() =>
        slots.flatMap((slot) => {
          const m = slot.current
          return m === undefined || m.state === "exited"
            ? []
            : [{ slot: slot.index, id: m.forked.id, pid: m.forked.pid, state: m.state }]
        })
      )
    }
  })

/**
 * The primary: its own `NodeShutdown` (the cluster's budget and signals; no
 * pre-stop delay of its own, each worker has its own) and the supervisor,
 * which starts the workers and completes once all are ready. Provide it
 * outermost, like `NodeShutdown.layer`; `Layer.launch(NodeCluster.layer(options))`
 * is a whole primary.
 *
 * Bad options fail it with a `ShutdownConfigError` naming the value; workers
 * that do not all become ready fail it with a {@link ClusterError}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<NodeCluster | Shutdown.Shutdown | Scope.Scope, ClusterError | ShutdownConfigError | Budget.BudgetError> =>
  Layer.unwrap(
    Effect.map(readSettings(options), (settings) =>
      Layer.effect(NodeCluster, make(settings)).pipe(
        Layer.provideMerge(NodeShutdown.layer(primaryShutdownOptions(options, settings)))
      ))
  )

/**
 * Run the same entry file as primary or worker: in the primary, {@link layer}
 * with `options` (it forks this file again for each worker); in a worker
 * (also under PM2's cluster mode), `worker`, which should be an ordinary
 * program under `NodeShutdown` that calls {@link ready} once it serves.
 *
 * Everything the file does at the top level runs in the primary too: keep it
 * inside `worker`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const runMain = <A, E>(worker: Effect.Effect<A, E>, options: Options = {}): void => {
  if (!Cluster.isPrimary()) return NodeRuntime.runMain(worker)
  NodeRuntime.runMain(Layer.launch(layer(options)))
}

/**
 * True in the primary (or a process running alone), false in a worker.
 *
 * @since 0.1.0
 * @category constructors
 */
export const isPrimary = (): boolean => Cluster.isPrimary()

/**
 * In a worker: tell the parent this worker is ready to serve (the primary
 * waits for it before it counts the worker in, or before it stops an old one
 * during a reload). It is PM2's `process.send("ready")`; without a parent it
 * does nothing, so the program also runs alone.
 *
 * @since 0.1.0
 * @category combinators
 */
export const ready: Effect.Effect<void> = Effect.sync(() => void Cluster.sendReady())

/**
 * `Health.markStarted` and {@link ready} together: readiness probes turn 200
 * and the primary counts the worker in at the same moment.
 *
 * @since 0.1.0
 * @category combinators
 */
export const markStarted: Effect.Effect<void, never, Health.Health> = Effect.andThen(Health.markStarted, ready)

/**
 * Replace the workers one at a time, as the reload signal does, and wait
 * until the reload ended.
 *
 * @since 0.1.0
 * @category combinators
 */
export const reload: Effect.Effect<ReloadResult, never, NodeCluster> = Effect.flatMap(NodeCluster, (c) => c.reload)

/**
 * The workers now.
 *
 * @since 0.1.0
 * @category combinators
 */
export const workers: Effect.Effect<ReadonlyArray<WorkerInfo>, never, NodeCluster> = Effect.flatMap(NodeCluster, (c) => c.workers)
