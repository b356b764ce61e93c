/**
 * A RabbitMQ consumer (amqplib) under the shutdown: no message lost, none
 * processed twice on SIGTERM.
 *
 * With amqplib alone a shutdown usually goes one of two ways: the process
 * exits with messages in hand (the broker requeues them when the connection
 * drops, and they run again from the start even if their work was done), or
 * it waits for them with no bound. The client also has no buffer of its own
 * to stop: deliveries keep arriving until the broker has answered
 * `basic.cancel`, and with a prefetch above the concurrency some of them wait
 * in the consumer's hands. This module consumes with manual acks and runs
 * each message as a unit of a winddown {@link Drain}:
 *
 * - `stopAccepting`: `channel.cancel(consumerTag)`. Deliveries that arrive
 *   until the broker's `cancel-ok` (it sends none after it) and those waiting
 *   for a free slot are not started: they go back to the queue at once
 *   (`nack` with requeue), so another consumer can take them during this
 *   process's drain;
 * - `drain`: messages being processed finish and are acked. At the soft
 *   deadline `process` sees `Drain.wrapUpRequested` and may save a checkpoint
 *   (in your own store, keyed by the message id) and return {@link HandBack};
 *   at the hard deadline (or a second signal) it is interrupted. Either way
 *   the message is nacked with requeue: it goes back to the queue and another
 *   consumer resumes it;
 * - `cleanup`: the channel closes, then the connection (when the module
 *   opened it), bounded; past 80 % of the cleanup allowance the socket is
 *   destroyed. Every ack was written before the close, and the broker handles
 *   a channel's frames in order, so no ack is lost on the way out.
 *
 * A channel or connection that closes under the consumer (the broker went
 * away, an operator closed the connection) leaves nothing to ack with: the
 * broker has already requeued every unacked message, so the messages in hand
 * are interrupted rather than finished twice, and the shutdown starts (if it
 * has not already). A consumer the broker cancels (its queue was deleted)
 * gets nothing more, but its channel still acks: what is in hand finishes,
 * and the shutdown starts. Either way the cleanup step fails, saying why.
 *
 * On SIGKILL nothing runs: the broker requeues the unacked messages when the
 * connection drops, and they are delivered again (`redelivered: true`), at
 * least once.
 *
 * @since 0.1.0
 */
import type { Channel, ChannelModel, ConsumeMessage, Options as AmqpOptions } from "amqplib"
import * as amqp from "amqplib"
import { Cause, Data, Duration, Effect, Exit, Fiber, type Scope } from "effect"
import * as Drain from "../Drain.ts"
import { holdScope } from "../internal/hold.ts"
import * as OptionCheck from "../internal/options.ts"
import * as Resource from "../Resource.ts"
import * as Shutdown from "../Shutdown.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as Worker from "../Worker.ts"

/**
 * What `process` returns to hand its message back to the queue (after a
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
  prefetch: "concurrency",
  onFailure: "reject",
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
   * How to reach RabbitMQ: a URL or amqplib's connect options (the consumer
   * opens the connection and closes it in `cleanup`), or a connection you
   * opened (the consumer opens and closes its own channel on it; the
   * connection is yours to close).
   */
  readonly connection: string | AmqpOptions.Connect | ChannelModel
  /** The queue to consume from. */
  readonly queue: string
  /**
   * Process one message. Success acks it; return {@link HandBack} to nack it
   * with requeue (after a checkpoint); a failure nacks it per `onFailure`.
   */
  readonly process: (message: ConsumeMessage) => Effect.Effect<unknown, unknown, R>
  /** Messages processed at once. Default 1. */
  readonly concurrency?: number | undefined
  /**
   * The consumer's prefetch (`basic.qos`, per consumer): unacked messages the
   * broker sends ahead. Default: `concurrency`. Above it, the extra messages
   * wait in the consumer for a free slot.
   */
  readonly prefetch?: number | undefined
  /**
   * What a failed `process` does to its message: `reject` (nack without
   * requeue: dead-lettered when the queue has a dead-letter exchange, else
   * dropped) or `requeue` (back to the queue, delivered again). Default
   * `reject`.
   */
  readonly onFailure?: "reject" | "requeue" | undefined
  /** Declare what the consumer needs (queues, bindings) on its channel before it consumes. */
  readonly setup?: ((channel: Channel) => Promise<unknown>) | undefined
  /** amqplib's consume options (`consumerTag`, `priority`, `arguments`...); acks are always manual. */
  readonly consumeOptions?: Omit<AmqpOptions.Consume, "noAck"> | undefined
  /** amqplib's socket options when the consumer opens the connection (`clientProperties`, TLS...). */
  readonly socketOptions?: Readonly<Record<string, unknown>> | undefined
  /** How long RabbitMQ may take to answer at startup. Default 5 s. */
  readonly startupTimeout?: Duration.Input | undefined
}

/**
 * Why a message went back to the queue: it was not started (waiting for a
 * slot, or delivered while the consumer was being cancelled), `process`
 * returned {@link HandBack} (`requested`), or it was interrupted at the hard
 * deadline or by escalation (`interrupted`).
 *
 * @since 0.1.0
 * @category models
 */
export type RequeueReason = "unstarted" | "requested" | "interrupted"

/**
 * The counts of a consumer, also its report section `amqp <name>`.
 * `delivered = acked + rejected + requeued + lostWithChannel + inFlight + waiting`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly delivered: number
  readonly acked: number
  /** Failed messages nacked per `onFailure` (`requeue` counts them here too). */
  readonly rejected: number
  readonly requeued: number
  readonly requeuedBy: Readonly<Record<RequeueReason, number>>
  /**
   * Messages whose ack or nack could not be sent because the channel had
   * closed under the consumer: the broker requeued them, so they are
   * delivered again (those already processed run twice).
   */
  readonly lostWithChannel: number
  readonly inFlight: number
  /** Delivered and waiting for a free slot (prefetch above concurrency). */
  readonly waiting: number
  /** The channel or connection closed under the consumer, and why. */
  readonly channelLost?: string
  /** The broker cancelled the consumer (its queue was deleted...). */
  readonly brokerCancelled?: string
}

/**
 * A running consumer.
 *
 * @since 0.1.0
 * @category models
 */
export interface AmqpConsumer {
  readonly name: string
  /** The consumer's channel (publish replies on it, read its events). Do not close it: the shutdown does. */
  readonly channel: Channel
  /** The connection: the module's own, or the one you passed. */
  readonly connection: ChannelModel
  readonly consumerTag: string
  readonly drain: Drain.Drain
  readonly statsUnsafe: () => Stats
}

/**
 * The queue could not be consumed from at startup (it does not exist, the
 * user may not read it, `setup` failed). One line, no stack frames.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsumeFailed extends Data.TaggedError("AmqpConsumeFailed")<{
  readonly queue: string
  readonly address: string
  readonly message: string
}> {
  constructor(args: { readonly queue: string; readonly address: string; readonly message: string }) {
    super(args)
    this.stack = `${this._tag}: ${this.message}`
  }
}

const isChannelModel = (c: Options<never>["connection"]): c is ChannelModel =>
  typeof c === "object" && c !== null && typeof (c as ChannelModel).createChannel === "function"

/** `host:port` of the broker, without credentials, for messages. */
const addressOf = (connection: Options<never>["connection"]): string => {
  if (typeof connection === "string") {
    try {
      const url = new URL(connection)
      return `${url.hostname}:${url.port === "" ? (url.protocol === "amqps:" ? 5671 : 5672) : url.port}`
    } catch {
      return connection.replace(/\/\/[^@/]*@/, "//")
    }
  }
  if (isChannelModel(connection)) {
    const stream = (connection.connection as { readonly stream?: { remoteAddress?: string; remotePort?: number } }).stream
    return `${stream?.remoteAddress ?? "?"}:${stream?.remotePort ?? "?"}`
  }
  return `${connection.hostname ?? "localhost"}:${connection.port ?? (connection.protocol === "amqps" ? 5671 : 5672)}`
}

const firstLine = (error: unknown): string => {
  const text = error instanceof Error ? error.message : String(error)
  return text.split("\n")[0]!.trim()
}

/** The socket under a connection, to destroy when a close does not finish. */
const destroySocket = (model: ChannelModel) => {
  const stream = (model.connection as { readonly stream?: { destroy?: () => void } }).stream
  stream?.destroy?.()
}

/**
 * Start a consumer in the current Shutdown: it registers
 * `<name>: cancel consumer` in `stopAccepting`, a drain `<name>` in `drain`,
 * and `<name>: close channel` in `cleanup`, and reports a section
 * `amqp <name>`. Fails with `Resource.Unavailable` (one line: RabbitMQ and
 * its address) when the broker does not answer at startup, and with
 * {@link ConsumeFailed} when the queue cannot be consumed from.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <R = never>(
  name: string,
  options: Options<R>
): Effect.Effect<
  AmqpConsumer,
  ShutdownConfigError | Drain.DrainError | Resource.Unavailable | ConsumeFailed,
  Shutdown.Shutdown | Scope.Scope | R
> =>
  Effect.gen(function*() {
    const { concurrency, prefetch, onFailure } = yield* OptionCheck.check(options, (c) => {
      c.name("queue", options.queue)
      c.func("process", options.process)
      if (options.setup !== undefined) c.func("setup", options.setup)
      const connection = options.connection
      if (
        !(typeof connection === "string" && connection.length > 0) &&
        !(typeof connection === "object" && connection !== null)
      ) c.refuse("connection", connection, "an amqp:// URL, amqplib connect options or an amqplib connection")
      c.duration("startupTimeout", options.startupTimeout ?? defaults.startupTimeout)
      const concurrency = c.integer("concurrency", options.concurrency ?? defaults.concurrency, 1, 65_535)!
      const prefetch = c.integer("prefetch", options.prefetch ?? concurrency, 1, 65_535)!
      if (prefetch < concurrency) {
        c.refuse("prefetch", prefetch, `at least concurrency (${concurrency}): slots beyond the prefetch would never fill`)
      }
      return { concurrency, prefetch, onFailure: c.oneOf("onFailure", options.onFailure ?? defaults.onFailure, ["reject", "requeue"] as const)! }
    })
    const shutdown = yield* Shutdown.Shutdown
    const address = addressOf(options.connection)
    const ownsConnection = !isChannelModel(options.connection)

    // Connect (or open a channel on the caller's connection) within the
    // startup timeout. A connection that completes after the timeout is
    // closed at once instead of being left open.
    const open = Effect.callback<{ model: ChannelModel; channel: Channel }, unknown>((resume) => {
      let abandoned = false
      let model: ChannelModel | undefined
      const attempt = async () => {
        const connection = options.connection
        model = isChannelModel(connection)
          ? connection
          : await amqp.connect(connection as string | AmqpOptions.Connect, {
            ...options.socketOptions,
            clientProperties: {
              connection_name: `winddown ${name}`,
              ...(options.socketOptions?.clientProperties as object | undefined)
            }
          })
        if (abandoned) throw new Error("abandoned")
        const channel = await model.createChannel()
        return { model, channel }
      }
      attempt().then(
        (opened) => abandoned ? void (ownsConnection ? opened.model.close().catch(() => {}) : opened.channel.close().catch(() => {})) : resume(Effect.succeed(opened)),
        (error: unknown) => {
          if (abandoned && ownsConnection && model !== undefined) model.close().catch(() => {})
          if (!abandoned) resume(Effect.fail(error))
        }
      )
      return Effect.sync(() => void (abandoned = true))
    })
    const { model, channel } = yield* Resource.check("RabbitMQ", address, open, {
      timeout: options.startupTimeout ?? defaults.startupTimeout
    })

    // The channel or connection closing under us: the broker requeues every
    // unacked message, so what is in hand can no longer be acked.
    let closingOurselves = false
    let channelLost: string | undefined
    let brokerCancelled: string | undefined
    let connectionClosed = false
    let lastError: string | undefined
    const onError = (error: unknown) => void (lastError ??= firstLine(error))
    channel.on("error", onError)
    // Errors of a connection the caller owns are the caller's to handle; its
    // close (with the broker's reason) is ours to know about.
    if (ownsConnection) model.on("error", onError)
    model.once("close", (error?: unknown) => {
      connectionClosed = true
      if (error !== undefined) onError(error)
    })

    const closeAll = Effect.promise(async () => {
      closingOurselves = true
      await channel.close().catch(() => {})
      if (ownsConnection && !connectionClosed) await model.close().catch(() => {})
    })
    const opened = Effect.tryPromise({
      try: async () => {
        await options.setup?.(channel)
        await channel.prefetch(prefetch, false)
      },
      catch: (error) =>
        new ConsumeFailed({
          queue: options.queue,
          address,
          message: `cannot set up the consumer of queue ${JSON.stringify(options.queue)} at ${address}: ${firstLine(error)}`
        })
    })
    yield* Effect.onError(opened, () => closeAll)

    const drain = yield* Drain.make(name, {
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.softTimeout === undefined ? {} : { softTimeout: options.softTimeout }),
      ...(options.softRatio === undefined ? {} : { softRatio: options.softRatio }),
      section: false
    }).pipe(Effect.onError(() => closeAll))
    const context = yield* Effect.context<R>()

    const counts = { delivered: 0, acked: 0, rejected: 0, requeued: 0, lostWithChannel: 0 }
    const requeuedBy: Record<RequeueReason, number> = { unstarted: 0, requested: 0, interrupted: 0 }
    const waiting: Array<ConsumeMessage> = []
    const running = new Set<Fiber.Fiber<unknown, unknown>>()
    let stopping = false
    const statsUnsafe = (): Stats => ({
      ...counts,
      requeuedBy: { ...requeuedBy },
      inFlight: counts.delivered - counts.acked - counts.rejected - counts.requeued - counts.lostWithChannel -
        waiting.length,
      waiting: waiting.length,
      ...(channelLost === undefined ? {} : { channelLost }),
      ...(brokerCancelled === undefined ? {} : { brokerCancelled })
    })

    // Each message is settled once (a second ack of one delivery tag closes
    // the channel). amqplib throws when the channel is already closed.
    const settle = (message: ConsumeMessage, how: "ack" | "requeue" | "reject", reason?: RequeueReason) => {
      try {
        if (how === "ack") channel.ack(message)
        else channel.nack(message, false, how === "requeue")
      } catch {
        counts.lostWithChannel++
        return
      }
      if (how === "ack") counts.acked++
      else if (reason === undefined) counts.rejected++
      else {
        counts.requeued++
        requeuedBy[reason]++
      }
    }

    // One message as a unit of the drain: only `process` is interruptible;
    // the ack or nack runs whatever happens to the unit.
    const unit = (message: ConsumeMessage) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.exit(restore(options.process(message))), (exit): Effect.Effect<void> => {
          if (Exit.isSuccess(exit)) {
            return Effect.sync(() => exit.value === HandBack ? settle(message, "requeue", "requested") : settle(message, "ack"))
          }
          if (Cause.hasInterruptsOnly(exit.cause)) return Effect.sync(() => settle(message, "requeue", "interrupted"))
          return Effect.andThen(
            Effect.sync(() => settle(message, onFailure)),
            Effect.logWarning(
              `[winddown] amqp ${JSON.stringify(name)}: process failed, message ${
                onFailure === "reject" ? "rejected" : "requeued"
              }`,
              { messageId: message.properties.messageId, cause: Cause.pretty(exit.cause).split("\n")[0] }
            )
          )
        })
      )

    // `active` counts slots taken, synchronously; `running` holds the units'
    // fibers, to interrupt them if the channel goes away.
    let active = 0
    const start = (message: ConsumeMessage) => {
      active++
      const done = () => {
        active--
        next()
      }
      const work = drain.runUnsafe(unit(message), context)
      if (work instanceof Drain.Refused) {
        // The drain closed (escalation) before the consumer was cancelled.
        settle(message, "requeue", "unstarted")
        return done()
      }
      running.add(work)
      // Called at once when the unit already ended.
      work.addObserver(() => {
        running.delete(work)
        done()
      })
    }
    // A unit that ends at once frees its slot inside `start`: the loop below
    // goes on rather than `next` nesting itself once per waiting message.
    let pumping = false
    const next = () => {
      if (pumping) return
      pumping = true
      try {
        while (!stopping && active < concurrency && waiting.length > 0) start(waiting.shift()!)
      } finally {
        pumping = false
      }
    }
    const returnWaiting = () => {
      for (const message of waiting.splice(0)) settle(message, "requeue", "unstarted")
    }

    const onMessage = (message: ConsumeMessage | null) => {
      if (message === null) {
        // The broker cancelled the consumer (its queue was deleted, a quorum
        // queue lost its leader...): nothing more comes, but the channel is
        // still open, so what is in hand finishes and is acked as usual.
        if (brokerCancelled === undefined) {
          brokerCancelled = `the broker cancelled the consumer of queue ${JSON.stringify(options.queue)}`
          stopping = true
          returnWaiting()
          Effect.runFork(Effect.logError(`[winddown] amqp ${JSON.stringify(name)}: ${brokerCancelled}`))
          if (!shutdown.isShuttingDownUnsafe()) Effect.runFork(shutdown.trigger(`amqp ${name}: ${brokerCancelled}`))
        }
        return
      }
      counts.delivered++
      if (stopping || active >= concurrency) waiting.push(message)
      else start(message)
    }

    const lost = (why: string) => {
      if (channelLost !== undefined) return
      channelLost = why
      stopping = true
      // Nothing can be acked any more and the broker requeued them: finishing
      // the work would only do it twice.
      counts.lostWithChannel += waiting.splice(0).length
      Effect.runFork(Effect.logError(`[winddown] amqp ${JSON.stringify(name)}: ${why}`))
      Effect.runFork(Fiber.interruptAll(Array.from(running)))
      if (!shutdown.isShuttingDownUnsafe()) Effect.runFork(shutdown.trigger(`amqp ${name}: ${why}`))
    }

    const { consumerTag } = yield* Effect.tryPromise({
      try: () => channel.consume(options.queue, onMessage, { ...options.consumeOptions, noAck: false }),
      catch: (error) =>
        new ConsumeFailed({
          queue: options.queue,
          address,
          message: `cannot consume from queue ${JSON.stringify(options.queue)} at ${address}: ${firstLine(error)}`
        })
    }).pipe(Effect.onError(() => closeAll))
    // From now on a close we did not ask for is a loss (a failed consume
    // above closes the channel too, and fails the startup instead).
    // amqplib closes the channels of a connection before it emits the
    // connection's error: the reason is read a turn later.
    channel.on("close", () => {
      if (closingOurselves) return
      queueMicrotask(() => lost(`the channel closed under the consumer${lastError === undefined ? "" : `: ${lastError}`}`))
    })

    // stopAccepting: the broker sends nothing after cancel-ok; what arrived
    // until then, and what waited for a slot, goes back to the queue now.
    let cancelling: Promise<void> | undefined
    const cancel = Effect.suspend(() => {
      stopping = true
      cancelling ??= channelLost !== undefined || brokerCancelled !== undefined
        ? Promise.resolve()
        : channel.cancel(consumerTag).then(() => undefined)
      return Effect.tryPromise(() => cancelling!).pipe(
        Effect.ensuring(Effect.sync(returnWaiting)),
        Effect.mapError((error) => new Error(`could not cancel the consumer: ${firstLine(error)}`))
      )
    })

    // cleanup: the channel, then the connection we opened; bounded.
    const closeWithinMs = Math.max(100, shutdown.budget.phasesMs.cleanup * 0.8)
    let closingDone: Promise<boolean> | undefined
    const close = Effect.suspend(() => {
      closingDone ??= (async () => {
        closingOurselves = true
        returnWaiting()
        if (channelLost === undefined) await channel.close().catch(() => {})
        if (ownsConnection && !connectionClosed) await model.close().catch(() => {})
        return true
      })()
      return Effect.promise(() => closingDone!).pipe(
        Effect.timeoutOrElse({
          duration: Duration.millis(closeWithinMs),
          // The socket of a connection the caller owns is theirs: left alone.
          orElse: () => Effect.sync(() => (ownsConnection && destroySocket(model), false))
        }),
        Effect.flatMap((closed) => {
          const problems = [
            ...(channelLost === undefined ? [] : [channelLost]),
            ...(brokerCancelled === undefined ? [] : [brokerCancelled]),
            ...(counts.lostWithChannel === 0 ? [] : [
              `${counts.lostWithChannel} message(s) could not be acked or nacked: the broker requeued them and delivers them again`
            ]),
            ...(closed ? [] : [
              `the close did not finish within ${Math.round(closeWithinMs)} ms${ownsConnection ? ": socket destroyed" : ""}`
            ])
          ]
          return problems.length === 0 ? Effect.void : Effect.fail(new Error(problems.join("; ")))
        })
      )
    })

    yield* shutdown.addSection(`amqp ${name}`, () => ({ ...statsUnsafe() }))
    yield* shutdown.addProgress(`amqp ${name}`, () => {
      const { inFlight } = statsUnsafe()
      return inFlight === 0 ? undefined : `${inFlight} message${inFlight === 1 ? "" : "s"} in hand`
    })
    yield* shutdown.addStep(`${name}: cancel consumer`, cancel, { phase: "stopAccepting" })
    yield* shutdown.addStep(`${name}: close channel`, close, { phase: "cleanup" })
    // Torn down before any shutdown: cancel, let the drain close (its own
    // finalizer), then close. During a shutdown the phases do it.
    yield* holdScope(
      shutdown,
      Effect.void,
      Effect.andThen(Effect.ignore(cancel), Effect.andThen(drain.close(), close)).pipe(
        Effect.catch((error) => Effect.logWarning(`[winddown] amqp ${JSON.stringify(name)}: ${error.message}`))
      )
    )
    return { name, channel, connection: model, consumerTag, drain, statsUnsafe } satisfies AmqpConsumer
  })
