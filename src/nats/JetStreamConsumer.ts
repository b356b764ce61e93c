/**
 * A NATS JetStream pull consumer (the `nats` client) under the shutdown: no
 * message lost, none processed twice on SIGTERM.
 *
 * JetStream redelivers a message whose ack has not arrived within the
 * consumer's `ack_wait` (30 s by default), so a shutdown that waits for long
 * messages can see them delivered a second time to another replica while it
 * still works on them; and a pull request cannot be withdrawn: once sent, the
 * server may deliver into it until it is full or expires. This module pulls
 * in batches no larger than its free slots and runs each message as a unit
 * of a winddown {@link Drain}:
 *
 * - `stopAccepting`: no new pull request is sent. The one in flight stays
 *   subscribed until the server ends it (it is never more than `expires`
 *   long), and whatever it still brings is not started: it is `nak`ed as
 *   soon as that request has ended (earlier, the server could deliver it
 *   straight back into it), so it goes to another consumer within `expires`
 *   rather than after `ack_wait`;
 * - `drain`: the last pull request ends (at most `expires` after it was
 *   sent), and what it brought is `nak`ed; messages in hand finish and are
 *   acked; every message in hand
 *   gets `working()` every `workingInterval` (a third of `ack_wait`), so the
 *   server does not redeliver it while it drains. At the soft deadline
 *   `process` sees `Drain.wrapUpRequested`, may save a checkpoint and return
 *   {@link HandBack}; at the hard deadline (or a second signal) it is
 *   interrupted. Either way it is `nak`ed: redelivered at once, to another
 *   consumer, which resumes it;
 * - `cleanup`: if the last pull request has not ended yet (the drain was
 *   cut), it is waited for (bounded) and closed, then the connection
 *   drains (its pending acks are flushed) and closes, when the module opened
 *   it.
 *
 * On SIGKILL nothing runs: the server redelivers what was in hand after
 * `ack_wait`, at least once.
 *
 * @since 0.1.0
 */
import { Cause, Data, Duration, Effect, Exit, Fiber, type Scope } from "effect"
import {
  type Consumer,
  type ConsumerMessages,
  connect,
  type ConnectionOptions,
  type JsMsg,
  type NatsConnection
} from "nats"
import * as Drain from "../Drain.ts"
import { holdScope } from "../internal/hold.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Resource from "../Resource.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as Worker from "../Worker.ts"

/**
 * What `process` returns to hand its message back (`nak`, after a
 * checkpoint) instead of acking it. The same symbol as `Worker.Requeue`.
 *
 * @since 0.1.0
 * @category models
 */
export const HandBack: Worker.Requeue = Worker.Requeue

/**
 * Defaults of {@link Options}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  concurrency: 1,
  expires: "1 second",
  workingInterval: "a third of ack_wait",
  onFailure: "nak",
  startupTimeout: "5 seconds"
} as const

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options<R> extends Pick<Drain.Options, "timeout" | "softTimeout" | "softRatio"> {
  /**
   * How to reach NATS: connection options (the consumer connects, and
   * drains and closes the connection in `cleanup`), or a connection you
   * opened and close yourself.
   */
  readonly connection: ConnectionOptions | NatsConnection
  /** The stream. */
  readonly stream: string
  /** The durable pull consumer on it (explicit acks). */
  readonly consumer: string
  /**
   * Process one message. Success acks it; return {@link HandBack} to `nak`
   * it (after a checkpoint); a failure is handled per `onFailure`.
   */
  readonly process: (message: JsMsg) => Effect.Effect<unknown, unknown, R>
  /** Messages processed at once (and the largest pull). Default 1. */
  readonly concurrency?: number | undefined
  /** How long one pull request may wait for messages (at least 1 s). Default 1 s. */
  readonly expires?: Duration.Input | undefined
  /** How often messages in hand tell the server they are still worked on (`working()`). Default: a third of the consumer's `ack_wait`. */
  readonly workingInterval?: Duration.Input | undefined
  /**
   * What a failed `process` does to its message: `nak` (redelivered, up to
   * the consumer's `max_deliver`) or `term` (never redelivered). Default `nak`.
   */
  readonly onFailure?: "nak" | "term" | undefined
  /** How long NATS may take to answer at startup. Default 5 s. */
  readonly startupTimeout?: Duration.Input | undefined
}

/**
 * Why a message was `nak`ed back: it arrived after the consumer stopped
 * pulling (`unstarted`), `process` returned {@link HandBack} (`requested`),
 * or it was interrupted at the hard deadline or by escalation
 * (`interrupted`).
 *
 * @since 0.1.0
 * @category models
 */
export type NakReason = "unstarted" | "requested" | "interrupted"

/**
 * The counts of a consumer, also its report section `nats <name>`.
 * `received = acked + failed + naked + unsent + inFlight`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly received: number
  readonly acked: number
  /** Failed messages, `nak`ed or `term`ed per `onFailure`. */
  readonly failed: number
  readonly naked: number
  readonly nakedBy: Readonly<Record<NakReason, number>>
  /**
   * Acks and naks the client refused because the connection had closed: the
   * server redelivers those messages after `ack_wait` (those already
   * processed run twice).
   */
  readonly unsent: number
  readonly inFlight: number
  /** Pull requests sent. */
  readonly pulls: number
}

/**
 * A running consumer.
 *
 * @since 0.1.0
 * @category models
 */
export interface JetStreamConsumer {
  readonly name: string
  readonly connection: NatsConnection
  readonly consumer: Consumer
  readonly drain: Drain.Drain
  readonly statsUnsafe: () => Stats
}

/**
 * The stream or consumer could not be used at startup (it does not exist,
 * JetStream is not enabled). One line, no stack frames.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsumeFailed extends Data.TaggedError("NatsConsumeFailed")<{
  readonly stream: string
  readonly consumer: string
  readonly address: string
  readonly message: string
}> {
  constructor(args: { readonly stream: string; readonly consumer: string; readonly address: string; readonly message: string }) {
    super(args)
    this.stack = `${this._tag}: ${this.message}`
  }
}

const isConnection = (c: Options<never>["connection"]): c is NatsConnection =>
  typeof (c as NatsConnection).jetstream === "function"

const addressOf = (connection: Options<never>["connection"]): string => {
  if (isConnection(connection)) return connection.getServer()
  const servers = connection.servers ?? "127.0.0.1:4222"
  const first = Array.isArray(servers) ? servers[0] ?? "127.0.0.1:4222" : servers
  return first.replace(/^nats:\/\//, "").replace(/^[^@/]*@/, "")
}

const firstLine = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  return text.split("\n")[0]!.trim()
}

/**
 * Start a consumer in the current Shutdown: it registers
 * `<name>: stop pulling` in `stopAccepting`, a drain `<name>` in `drain`,
 * and `<name>: close` in `cleanup`, and reports a section `nats <name>`.
 * Fails with `Resource.Unavailable` (one line: NATS and its address) when
 * the server does not answer at startup, and with {@link ConsumeFailed} when
 * the stream or consumer cannot be used.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(
  name: string,
  options: Options<R>
): Effect.Effect<
  JetStreamConsumer,
  ShutdownConfigError | Drain.DrainError | Resource.Unavailable | ConsumeFailed,
  Shutdown.Shutdown | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const settings = yield* OptionCheck.check(options, (c) => {
      c.name("stream", options.stream)
      c.name("consumer", options.consumer)
      c.func("process", options.process)
      if (typeof options.connection !== "object" || options.connection === null) {
        c.refuse("connection", options.connection, "NATS connection options or a NatsConnection")
      }
      c.duration("startupTimeout", options.startupTimeout ?? defaults.startupTimeout)
      const expiresMs = c.duration("expires", options.expires ?? defaults.expires)!
      if (expiresMs < 1000) c.refuse("expires", options.expires, "a duration of at least 1 second (the client's minimum)")
      return {
        concurrency: c.integer("concurrency", options.concurrency ?? defaults.concurrency, 1, 10_000)!,
        expiresMs,
        workingMs: c.duration("workingInterval", options.workingInterval),
        onFailure: c.oneOf("onFailure", options.onFailure ?? defaults.onFailure, ["nak", "term"] as const)!
      }
    })
    const { concurrency, expiresMs, onFailure } = settings
    const shutdown = yield* Shutdown.Shutdown
    const address = addressOf(options.connection)
    const ownsConnection = !isConnection(options.connection)

    // Connect within the startup timeout; a connection that completes after
    // it is closed at once.
    const open = Effect.callback<NatsConnection, unknown>((resume) => {
      let abandoned = false
      const connection = options.connection
      const attempt = isConnection(connection)
        ? connection.flush().then(() => connection)
        : connect({ name: `winddown ${name}`, ...connection })
      attempt.then(
        (nc) => abandoned ? void (ownsConnection ? nc.close().catch(() => {}) : undefined) : resume(Effect.succeed(nc)),
        (error: unknown) => abandoned ? undefined : resume(Effect.fail(error))
      )
      return Effect.sync(() => void (abandoned = true))
    })
    const nc = yield* Resource.check("NATS", address, open, {
      timeout: options.startupTimeout ?? defaults.startupTimeout
    })
    const closeConnection = Effect.promise(() => ownsConnection ? nc.close().catch(() => {}) : Promise.resolve())
    const { consumer, ackWaitMs } = yield* Effect.tryPromise({
      try: async () => {
        const consumer = await nc.jetstream().consumers.get(options.stream, options.consumer)
        const info = await consumer.info(true)
        return { consumer, ackWaitMs: Number(info.config.ack_wait ?? 30_000_000_000) / 1e6 }
      },
      catch: (error) =>
        new ConsumeFailed({
          stream: options.stream,
          consumer: options.consumer,
          address,
          message: `cannot consume from ${options.stream}/${options.consumer} at ${address}: ${firstLine(error)}`
        })
    }).pipe(Effect.onError(() => closeConnection))
    const workingMs = settings.workingMs ?? Math.max(100, ackWaitMs / 3)

    const drain = yield* Drain.make(name, {
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.softTimeout === undefined ? {} : { softTimeout: options.softTimeout }),
      ...(options.softRatio === undefined ? {} : { softRatio: options.softRatio }),
      section: false
    }).pipe(Effect.onError(() => closeConnection))
    const context = yield* Effect.context<R>()

    const counts = { received: 0, acked: 0, failed: 0, naked: 0, unsent: 0, pulls: 0 }
    const nakedBy: Record<NakReason, number> = { unstarted: 0, requested: 0, interrupted: 0 }
    const inHand = new Set<JsMsg>()
    let stopping = false
    const statsUnsafe = (): Stats => ({
      ...counts,
      nakedBy: { ...nakedBy },
      inFlight: counts.received - counts.acked - counts.failed - counts.naked - counts.unsent
    })
    // The client throws once the connection is closed: the server then
    // redelivers the message after ack_wait.
    const send = (f: () => void): boolean => {
      try {
        f()
        return true
      } catch {
        counts.unsent++
        return false
      }
    }
    const nak = (message: JsMsg, reason: NakReason) => {
      if (!send(() => message.nak())) return
      counts.naked++
      nakedBy[reason]++
    }

    // One message as a unit of the drain: only `process` is interruptible;
    // the ack or nak runs whatever happens to the unit.
    const unit = (message: JsMsg) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(options.process(message))), (exit): Effect.Effect<void> => {
          inHand.delete(message)
          if (Exit.isSuccess(exit)) {
            return Effect.sync(() => {
              if (exit.value === HandBack) return nak(message, "requested")
              if (send(() => message.ack())) counts.acked++
            })
          }
          if (Cause.hasInterruptsOnly(exit.cause)) return Effect.sync(() => nak(message, "interrupted"))
          return Effect.andThen(
            Effect.sync(() => {
              if (send(() => onFailure === "term" ? message.term() : message.nak())) counts.failed++
            }),
            Effect.logWarning(`[winddown] nats ${JSON.stringify(name)}: process failed, message ${onFailure === "term" ? "terminated" : "naked"}`, {
              seq: message.seq,
              cause: Cause.pretty(exit.cause).split("\n")[0]
            })
          )
        })
      )

    // Slots: a pull asks for as many messages as there are free slots.
    // `slotFreed` wakes the pull loop while it waits: a slot freed, or the stop.
    let active = 0
    let slotFreed: (() => void) | undefined
    const freeSlot = () => {
      active--
      slotFreed?.()
    }
    const start = (message: JsMsg) => {
      active++
      inHand.add(message)
      const work = drain.runUnsafe(unit(message), context)
      if (work instanceof Drain.Refused) {
        // The drain closed (escalation) before the pulling stopped.
        inHand.delete(message)
        nak(message, "unstarted")
        return freeSlot()
      }
      work.addObserver(freeSlot) // called at once when the unit already ended
    }

    // The pull loop. A pull request in flight is never abandoned: it ends
    // when it is full or expires, and what it brings after the stop is
    // nak'ed, so no message is delivered into an inbox nobody reads.
    let current: ConsumerMessages | undefined
    const held: Array<JsMsg> = []
    // A failed pull (a reconnect in progress, missed heartbeats) is retried
    // after `expires`, logged once per message; only a closed connection ends
    // the loop, and then the shutdown starts: nothing would be consumed.
    let pullError: string | undefined
    let lastLogged: string | undefined
    const pulling = (async () => {
      try {
        while (!stopping) {
          if (active >= concurrency) {
            await new Promise<void>((resolve) => (slotFreed = resolve))
            slotFreed = undefined
            continue
          }
          counts.pulls++
          try {
            const batch = await consumer.fetch({ max_messages: concurrency - active, expires: expiresMs })
            current = batch
            for await (const message of batch) {
              counts.received++
              if (stopping) held.push(message)
              else start(message)
            }
          } catch (error) {
            pullError = firstLine(error)
            if (nc.isClosed()) throw error
            if (pullError !== lastLogged && !stopping) {
              lastLogged = pullError
              Effect.runFork(Effect.logWarning(`[winddown] nats ${JSON.stringify(name)}: pull failed, retrying: ${pullError}`))
            }
            if (!stopping) {
              // Woken early by the stop, so that no timer outlives it.
              await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, expiresMs)
                slotFreed = () => (clearTimeout(timer), resolve())
              })
              slotFreed = undefined
            }
          } finally {
            current = undefined
          }
        }
      } finally {
        // Nak'ed only now: a message nak'ed while our pull request was still
        // open could be delivered straight back into it.
        for (const message of held.splice(0)) nak(message, "unstarted")
      }
    })()
    // The pull loop's end, however it ended: what the drain and the close wait for.
    const pullingEnded = pulling.then(() => {}, () => {})
    pulling.catch((error: unknown) => {
      pullError = firstLine(error)
      if (!stopping) {
        Effect.runFork(Effect.logError(`[winddown] nats ${JSON.stringify(name)}: the connection closed, pulling stopped: ${pullError}`))
        if (!shutdown.isShuttingDownUnsafe()) Effect.runFork(shutdown.trigger(`nats ${name}: the connection closed: ${pullError}`))
      }
    })

    // working() for every message in hand, so that none is redelivered
    // while it runs, during the drain too.
    const heartbeat = yield* Effect.forkDetach(
      Effect.forever(
        Effect.andThen(
          Effect.sleep(Duration.millis(workingMs)),
          Effect.sync(() => {
            for (const message of inHand) message.working()
          })
        )
      )
    )

    const stopPulling = Effect.sync(() => {
      stopping = true
      slotFreed?.()
    })

    // cleanup: wait for the last pull to end (bounded), then drain the
    // connection we opened (flushing the acks).
    const closeWithinMs = Math.max(100, shutdown.budget.phasesMs.cleanup * 0.8)
    let closing: Promise<Array<string>> | undefined
    const close = Effect.suspend(() => {
      closing ??= (async () => {
        stopping = true
        slotFreed?.()
        const problems: Array<string> = []
        // The timer is cleared when the pull ends first: a pending one would
        // hold the process after the report.
        let timer: ReturnType<typeof setTimeout> | undefined
        const ended = await Promise.race([
          pullingEnded.then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.min(expiresMs * 1.1, closeWithinMs / 2))))
        ])
        clearTimeout(timer)
        if (!ended) {
          problems.push("the last pull request did not end in time: a message it still brings is redelivered after ack_wait")
          await current?.close().catch(() => {})
          for (const message of held.splice(0)) nak(message, "unstarted")
        }
        if (pullError !== undefined && nc.isClosed()) problems.push(`the connection closed: ${pullError}`)
        if (counts.unsent > 0) {
          problems.push(`${counts.unsent} ack(s)/nak(s) could not be sent: the server redelivers those messages after ack_wait`)
        }
        // The acks reach the server with this drain (or flush); one that
        // fails means acks written while the connection was down were lost.
        const lost = (error: unknown) =>
          void problems.push(
            `the connection to NATS at ${address} is lost (${firstLine(error)}): acks written since it went down never ` +
              `reached the server, and their messages are redelivered after ack_wait`
          )
        if (ownsConnection) await nc.drain().catch(lost)
        else await nc.flush().catch(lost)
        return problems
      })()
      return Effect.andThen(Fiber.interrupt(heartbeat), Effect.promise(() => closing!)).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(closeWithinMs),
          orElse: () =>
            Effect.promise(async () => {
              if (ownsConnection) await nc.close().catch(() => {})
              return [
                `the close did not finish within ${Math.round(closeWithinMs)} ms (${
                  nc.isClosed() ? "closed" : "the server does not answer"
                }): acks not yet sent are lost and their messages redelivered after ack_wait`
              ]
            })
        }),
        Effect.flatMap((problems) => problems.length === 0 ? Effect.void : Effect.fail(new Error(problems.join("; "))))
      )
    })

    yield* shutdown.addSection(`nats ${name}`, () => ({ ...statsUnsafe() }))
    yield* shutdown.addProgress(`nats ${name}`, () => {
      const { inFlight } = statsUnsafe()
      return inFlight === 0 ? undefined : `${inFlight} message${inFlight === 1 ? "" : "s"} in hand`
    })
    yield* shutdown.addStep(`${name}: stop pulling`, stopPulling, { phase: "stopAccepting" })
    // The pull in flight at the stop may run `expires` more: waited for in
    // the drain, beside the messages in hand, rather than in the shorter
    // cleanup phase (where a cleanup shorter than `expires` would cut it).
    yield* shutdown.addStep(`${name}: last pull request`, Effect.promise(() => pullingEnded), {
      phase: "drain"
    })
    yield* shutdown.addStep(`${name}: close`, close, { phase: "cleanup" })
    yield* holdScope(
      shutdown,
      Effect.void,
      Effect.andThen(stopPulling, Effect.andThen(drain.close(), close)).pipe(
        Effect.catch((error) => Effect.logWarning(`[winddown] nats ${JSON.stringify(name)}: ${error.message}`))
      )
    )
    return { name, connection: nc, consumer, drain, statsUnsafe } satisfies JetStreamConsumer
  })
