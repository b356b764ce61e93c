/**
 * The one place winddown touches the Node process: signal and crash
 * listeners, the watchdog and exit timers, the last lines it writes, and the
 * exit code it carries out. The direction is one way: a signal triggers the
 * Shutdown; the Shutdown's start arms the watchdog; its report is written and
 * its exit code carried out here. The code itself is decided in the core
 * (`internal/exitCode.ts`); this module only applies it.
 *
 * Nothing here can crash the process: writes to a closed stdout or stderr
 * (`node app | head -1`) are dropped, not thrown.
 */
import * as ExitCode from "../../internal/exitCode.ts"
import { formatMillis } from "../../internal/duration.ts"
import * as Deadline from "../../internal/deadline.ts"
import type * as Shutdown from "../../Shutdown.ts"
import * as ShutdownReport from "../../ShutdownReport.ts"

/** The Node side's settings, validated by NodeShutdown. */
export interface Settings {
  readonly signals: ReadonlyArray<NodeJS.Signals>
  readonly forceOnSignal: number
  readonly exitOnSignal: number
  readonly repeatWindowMs: number
  readonly handleUncaught: boolean
  readonly reportJson: boolean
  readonly reportSummary: boolean
  readonly watchdog: boolean
  readonly exitGraceMs: number
  /**
   * Where the report lines go: a stream, or a function (the Node layer logs
   * them through the program's logger). The watchdog, which exits at once,
   * always writes to the stream given by `reportStream`.
   */
  readonly reportTo: (line: string) => void
  readonly reportStream: "stdout" | "stderr"
}

/** The environment, for options that depend on it (`preStop: auto`, empty variables). */
export const environment = (): Readonly<Record<string, string | undefined>> => process.env

// ---------------------------------------------------------------------------
// Writing: never throws, never crashes on a closed pipe.
// ---------------------------------------------------------------------------

let streamsGuarded = false

/**
 * A closed stdout or stderr emits 'error' (EPIPE) asynchronously; with no
 * listener that is an uncaught exception. Losing the log pipe is not a reason
 * to lose work: the errors are dropped for the life of the process.
 */
const guardStreams = () => {
  if (streamsGuarded) return
  streamsGuarded = true
  const ignore = () => {}
  process.stdout.on("error", ignore)
  process.stderr.on("error", ignore)
}

const write = (stream: NodeJS.WriteStream, text: string): void => {
  try {
    if (!stream.destroyed && stream.writable) stream.write(text)
  } catch {
    // the pipe is gone: exiting or shutting down matters more than the line
  }
}

/** One line on stderr, best effort. */
export const say = (line: string): void => write(process.stderr, `${line}\n`)

// ---------------------------------------------------------------------------
// The exit code: decided by the core, carried out here.
// ---------------------------------------------------------------------------

interface Decision {
  readonly settings: ExitCode.Settings
  readonly code: number
  readonly leftRunning: () => number
}

let decision: Decision | undefined
let exitListener = false

/** The code the process exits with now (undefined: no shutdown decided one). */
export const currentExitCode = (): number | undefined =>
  decision === undefined ? undefined : ExitCode.atExit(decision.settings, decision.code, decision.leftRunning())

const onExit = () => {
  const code = currentExitCode()
  if (code !== undefined) process.exitCode = code
}

/**
 * Make `code` the process's exit code whatever exits it later: `runMain`'s
 * `process.exit(130)`, a natural exit, or our own timers. Node reads
 * `process.exitCode` after the 'exit' listeners ran.
 */
const carryOut = (d: Decision): void => {
  decision = d
  process.exitCode = d.code
  if (!exitListener) {
    exitListener = true
    process.on("exit", onExit)
  }
}

/** Leave now with `code`, after writing `line` on stderr. */
const exitNow = (code: number, line: string): never => {
  say(line)
  process.exitCode = code
  return process.exit(code)
}

// ---------------------------------------------------------------------------
// Timers that never hold the process and take any duration.
// ---------------------------------------------------------------------------

/** An unref'd timer; delays above Node's 2^31-1 ms limit are chained instead of firing at once. */
const laterUnref = (ms: number, f: () => void): { readonly cancel: () => void } => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const schedule = (left: number) => {
    const step = Math.min(Math.max(0, left), Deadline.maxTimerMs)
    timer = setTimeout(() => (left > Deadline.maxTimerMs ? schedule(left - Deadline.maxTimerMs) : f()), step)
    timer.unref()
  }
  schedule(ms)
  return { cancel: () => clearTimeout(timer) }
}

/** "Timeout ×2, TCPServerWrap": what keeps the event loop alive, for the last line. */
const activeResources = (): string => {
  const counts = new Map<string, number>()
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1)
  return Array.from(counts, ([kind, n]) => (n > 1 ? `${kind} ×${n}` : kind)).join(", ") || "nothing visible"
}

const describeLeft = (shutdown: Shutdown.Service): string => {
  const left = shutdown.leftRunningUnsafe()
  return left.length === 0 ? "" : `steps left running: ${left.map((s) => `${s.phase} "${s.name}"`).join(", ")}; `
}

// ---------------------------------------------------------------------------
// Installing on one Shutdown.
// ---------------------------------------------------------------------------

/** What {@link install} returns to the layer. */
export interface Installed {
  /** The shutdown started (from anywhere): arm the watchdog. */
  readonly started: () => void
  /** The report exists: write it, carry out the exit code, arm the exit guard. */
  readonly reported: (report: ShutdownReport.ShutdownReport) => void
  /** Remove the listeners (the timers stay: the process must still end by the deadline). */
  readonly dispose: () => void
}

const describeError = (u: unknown) => (u instanceof Error ? u.stack ?? u.message : String(u))

const writeReport = (settings: Settings, report: ShutdownReport.ShutdownReport, to = settings.reportTo) => {
  if (settings.reportSummary) to(ShutdownReport.formatSummary(report))
  if (settings.reportJson) to(ShutdownReport.toJsonLine(report))
}

/** Write a line to stdout or stderr, never throwing. */
export const writeLine = (stream: "stdout" | "stderr", line: string): void =>
  write(stream === "stdout" ? process.stdout : process.stderr, `${line}\n`)

/**
 * Listen for the signals (prepended, so winddown counts every signal before
 * `runMain` reacts to it) and, with `handleUncaught`, for crashes.
 */
export const install = (shutdown: Shutdown.Service, settings: Settings): Installed => {
  guardStreams()
  let count = 0
  let last: { readonly signal: string; readonly at: number } | undefined
  let reportWritten = false
  let watchdog: { readonly cancel: () => void } | undefined

  const started = () => {
    if (watchdog !== undefined || !settings.watchdog) return
    watchdog = laterUnref(shutdown.remainingMillisUnsafe(), () => {
      if (reportWritten) {
        return exitNow(
          currentExitCode() ?? ExitCode.atDeadline(shutdown.exitSettings),
          `[winddown] hard deadline: the shutdown ended but the process is still alive (${describeLeft(shutdown)}active: ${activeResources()}); exiting`
        )
      }
      const status = shutdown.statusUnsafe()
      const report = shutdown.snapshotUnsafe({ budgetSpent: true })
      const code = report.exitCode
      reportWritten = true
      writeReport(settings, report, (line) => writeLine(settings.reportStream, line))
      const running = ShutdownReport.steps(report).filter((s) => s.outcome === "running").map((s) => `"${s.name}"`)
      exitNow(
        code,
        `[winddown] hard deadline: the ${formatMillis(shutdown.budget.timeoutMs)} budget is spent during ${status}${
          running.length > 0 ? ` (still running: ${running.join(", ")})` : ""
        }; exiting`
      )
    })
  }

  const reported = (report: ShutdownReport.ShutdownReport) => {
    if (reportWritten) return
    reportWritten = true
    writeReport(settings, report)
    carryOut({
      settings: shutdown.exitSettings,
      code: report.exitCode,
      leftRunning: () => shutdown.leftRunningUnsafe().length
    })
    if (!settings.watchdog) return
    // The shutdown is over: nothing of ours should keep the process alive. If
    // something does (a step left behind, a stray server or timer), end it
    // after a short grace, never past the hard deadline.
    const grace = Deadline.exitGrace(shutdown.remainingMillisUnsafe(), settings.exitGraceMs)
    laterUnref(grace, () => {
      const code = currentExitCode() ?? report.exitCode
      exitNow(
        code,
        `[winddown] the shutdown ended ${formatMillis(grace)} ago but the process is still alive (${
          describeLeft(shutdown)
        }active: ${activeResources()}); exiting with ${code}`
      )
    })
  }

  const onSignal = (signal: NodeJS.Signals) => {
    const now = performance.now()
    if (last !== undefined && last.signal === signal && now - last.at < settings.repeatWindowMs) return
    last = { signal, at: now }
    count++
    if (count >= settings.exitOnSignal) {
      exitNow(ExitCode.conventional(signal), `[winddown] ${signal} (signal ${count}): exiting now`)
    } else if (count >= settings.forceOnSignal) {
      say(`[winddown] ${signal} (signal ${count}): forcing shutdown; signal ${settings.exitOnSignal} exits at once`)
      shutdown.forceUnsafe(signal)
    } else {
      shutdown.triggerUnsafe({ _tag: "signal", signal })
      started()
    }
  }
  const onUncaught = (tag: "uncaughtException" | "unhandledRejection") => (error: unknown) => {
    say(`[winddown] ${tag}: ${describeError(error)}`)
    shutdown.triggerUnsafe({ _tag: tag, message: error instanceof Error ? error.message : String(error) })
    started()
  }
  const uncaught = onUncaught("uncaughtException")
  const unhandled = onUncaught("unhandledRejection")

  for (const signal of settings.signals) process.prependListener(signal, onSignal)
  if (settings.handleUncaught) {
    process.prependListener("uncaughtException", uncaught)
    process.prependListener("unhandledRejection", unhandled)
  }
  return {
    started,
    reported,
    dispose: () => {
      for (const signal of settings.signals) process.removeListener(signal, onSignal)
      if (settings.handleUncaught) {
        process.removeListener("uncaughtException", uncaught)
        process.removeListener("unhandledRejection", unhandled)
      }
    }
  }
}
