/**
 * Real resources (a database, a queue server) at the edges of a shutdown:
 * check at startup that a server answers, and fail with one clear line
 * naming it and its address when it does not.
 *
 * ```ts
 * yield* Resource.check("PostgreSQL", "127.0.0.1:5432", sql`SELECT 1`)
 * // unreachable: the program stops with
 * // ResourceUnavailable: PostgreSQL at 127.0.0.1:5432 is unreachable: connect ECONNREFUSED (after 1 ms)
 * ```
 *
 * @since 0.1.0
 */
import { Cause, Clock, Data, Effect } from "effect"
import { type Input as DurationInput, toMillis } from "./internal/duration.ts"

/**
 * Defaults of {@link check}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  timeout: "5 seconds"
} as const

/**
 * A server did not answer at startup. Its `message` is the whole story in
 * one line (the service, its address, why), and it carries no stack frames:
 * the program's failure output is that line.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unavailable extends Data.TaggedError("ResourceUnavailable")<{
  /** What the server is, e.g. `PostgreSQL`, `Redis`. */
  readonly service: string
  /** Where it was expected, e.g. `127.0.0.1:5432`. */
  readonly address: string
  readonly reason: "unreachable" | "timedOut"
  readonly message: string
}> {
  constructor(args: {
    readonly service: string
    readonly address: string
    readonly reason: "unreachable" | "timedOut"
    readonly message: string
  }) {
    super(args)
    // Nothing below the message helps: the address and the cause are in it.
    this.stack = `${this.name}: ${this.message}`
  }
}

/**
 * The first line of the innermost error: drivers wrap the socket's error
 * (`connect ECONNREFUSED 127.0.0.1:5432`) in their own (`Failed to connect`).
 */
const describe = (cause: Cause.Cause<unknown>): string => {
  let error: unknown = Cause.squash(cause)
  let text = String(error)
  for (let depth = 0; depth < 8 && typeof error === "object" && error !== null; depth++) {
    const { message } = error as { readonly message?: unknown }
    if (typeof message === "string" && message.length > 0) text = message
    const e = error as { readonly cause?: unknown; readonly reason?: unknown }
    error = e.cause ?? (typeof e.reason === "object" ? e.reason : undefined)
  }
  return text.split("\n")[0]!.trim()
}

/**
 * Run `probe` (a `SELECT 1`, a `PING`) within `timeout`; when it fails, dies
 * or takes too long, fail with {@link Unavailable} naming `service` and
 * `address`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = <A, E, R>(
  service: string,
  address: string,
  probe: Effect.Effect<A, E, R>,
  options: { readonly timeout?: DurationInput | undefined } = {}
): Effect.Effect<A, Unavailable, R> =>
  Effect.gen(function*() {
    const timeoutMs = toMillis(options.timeout ?? defaults.timeout) ?? 5_000
    const start = yield* Clock.currentTimeMillis
    const after = Effect.map(Clock.currentTimeMillis, (now) => `${now - start} ms`)
    return yield* probe.pipe(
      Effect.timeoutOrElse({
        duration: timeoutMs,
        orElse: () =>
          Effect.flatMap(after, (elapsed) =>
            Effect.fail(
              new Unavailable({
                service,
                address,
                reason: "timedOut",
                message: `${service} at ${address} did not answer within ${elapsed}`
              })
            ))
      }),
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause as Cause.Cause<never>)
          : Cause.squash(cause) instanceof Unavailable
          ? Effect.fail(Cause.squash(cause) as Unavailable)
          : Effect.flatMap(after, (elapsed) =>
            Effect.fail(
              new Unavailable({
                service,
                address,
                reason: "unreachable",
                message: `${service} at ${address} is unreachable: ${describe(cause)} (after ${elapsed})`
              })
            ))
      )
    )
  })
