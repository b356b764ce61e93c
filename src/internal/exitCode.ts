/**
 * The one owner of the exit code. Every exit code a shutdown can end with is
 * decided here, from what happened: why it started, whether a second signal
 * forced it, whether the watchdog had to end it, whether a step left behind
 * was still running when the process ended. The Node side only carries the
 * number out (`process.exitCode`, `process.exit`).
 */
import type * as ShutdownReport from "../ShutdownReport.ts"

/** The settings the decision reads, validated once with the other options. */
export interface Settings {
  readonly signalExit: "success" | "conventional"
  readonly forcedExitCode: number
  readonly deadlineExitCode: number
}

/** Signal numbers for the conventional 128+n exit codes (Linux numbering; SIGBREAK is Windows'). */
export const signalNumbers: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGBREAK: 21
}

/** 128 + the signal's number: what a shell reports for a process killed by it. */
export const conventional = (signal: string): number => 128 + (signalNumbers[signal] ?? 0)

/**
 * The code a shutdown ends with once its phases ran. `unclean` is a code a
 * subsystem asked for because work the shutdown waited for did not end
 * cleanly (a cluster worker that exited with an error, or had to be killed):
 * it replaces a 0, never another code.
 */
export const decide = (
  settings: Settings,
  reason: ShutdownReport.Reason,
  forced: boolean,
  unclean?: number | undefined
): number => {
  const code = byReason(settings, reason, forced)
  return code === 0 && unclean !== undefined ? unclean : code
}

const byReason = (settings: Settings, reason: ShutdownReport.Reason, forced: boolean): number => {
  if (forced) return settings.forcedExitCode
  switch (reason._tag) {
    case "signal":
      return settings.signalExit === "success" ? 0 : conventional(reason.signal)
    case "failed":
      return reason.exitCode
    case "interrupted":
      return 130
    case "uncaughtException":
    case "unhandledRejection":
      return 1
    case "manual":
    case "completed":
      return 0
  }
}

/** The code when the watchdog ends the process because the budget is spent. */
export const atDeadline = (settings: Settings): number => settings.deadlineExitCode

/**
 * The code at the moment the process exits: the decided one, unless a step
 * that ran past its deadline is still running, i.e. winddown had to leave
 * something behind: then the deadline code.
 */
export const atExit = (settings: Settings, decided: number, leftRunning: number): number =>
  leftRunning > 0 ? settings.deadlineExitCode : decided
