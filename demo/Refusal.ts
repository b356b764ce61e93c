/**
 * Why the demo refuses to start, as one line and a documented exit code.
 *
 * Every startup check fails with a `Refusal`; `main.ts` prints its message as
 * the only line of output and exits with its code (through runMain's
 * `errorExitCode` marker; `errorReported: false` keeps runMain from printing
 * it again with a stack).
 */
import { Data, Effect, Runtime } from "effect"

/**
 * Exit codes of a refused start (sysexits.h), in the README's "Operating it".
 * A supervisor can tell "fix the settings" from "try again later".
 */
export const exitCodes = {
  /** A setting (variable) cannot be used: fix it. */
  setting: 78,
  /** Someone else holds what it needs (the data directory, the port): stop them or wait. */
  inUse: 75,
  /** A server it needs (PostgreSQL, with DATABASE_URL) does not answer: try again later. */
  unavailable: 75,
  /** The journal cannot be read, written or repaired. */
  journal: 74,
  /** The jobs table (with DATABASE_URL) cannot be created or is not one the demo can use. */
  table: 74
} as const

export type Reason = keyof typeof exitCodes

export class Refusal extends Data.TaggedError("Refusal")<{
  readonly reason: Reason
  readonly message: string
}> {
  override readonly [Runtime.errorReported] = false
  override get [Runtime.errorExitCode]() {
    return exitCodes[this.reason]
  }
}

/** `NAME="value"`, with long values cut, for messages. */
export const show = (variable: string, value: string) =>
  `${variable}=${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)}`

export const setting = (variable: string, value: string, problem: string) =>
  new Refusal({ reason: "setting", message: `${show(variable, value)}: ${problem}` })

/** The one line printed for a refusal: never more than one, whatever the message holds. */
export const line = (refusal: Refusal) => `[demo] refused to start: ${refusal.message.replace(/\s*\n\s*/g, " ")}`

/** Print the line of a refusal, once, on stderr. */
export const report = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.tapError(effect, (e) =>
    e instanceof Refusal
      ? Effect.sync(() => {
        try {
          process.stderr.write(`${line(e)}\n`)
        } catch {
          // stderr closed: the exit code still says it
        }
      })
      : Effect.void)
