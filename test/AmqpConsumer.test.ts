// AmqpConsumer's rules on a stand-in amqplib connection, under TestClock: what
// is acked, nacked and when, in which order with the cancel and the close,
// and what the report says when the channel goes away or a close hangs. The
// behaviour against the real broker, with real signals, is test/amqp.test.ts.
import { assert, describe, it } from "@effect/vitest"
import type { ChannelModel, ConsumeMessage } from "amqplib"
import { Deferred, Effect } from "effect"
import { TestClock } from "effect/testing"
import { EventEmitter } from "node:events"
import { AmqpConsumer } from "../src/amqp/index.ts"
import { Drain } from "../src/index.ts"
import { section, stepNamed, withShutdown } from "./support/report.ts"

/** 20 s budget: drain 10 s (soft deadline 8 s into it), cleanup 4 s. */
const budget = { timeout: "20 seconds", stopAccepting: "2 seconds", drain: "10 seconds", cleanup: "4 seconds" } as const

const idOf = (m: ConsumeMessage) => String(m.properties.messageId)

/** A connection whose channel records what the consumer does with it. */
const standIn = (options: { readonly closeHangs?: boolean } = {}) => {
  const calls: Array<string> = []
  let deliver: (m: ConsumeMessage | null) => void = () => {}
  let closed = false
  const settle = (what: string) => {
    if (closed) throw new Error("Channel closed")
    calls.push(what)
  }
  const channel = Object.assign(new EventEmitter(), {
    prefetch: async (n: number) => void calls.push(`prefetch ${n}`),
    consume: async (_: string, callback: (m: ConsumeMessage | null) => void) => {
      deliver = callback
      return { consumerTag: "ctag" }
    },
    cancel: async () => {
      calls.push("cancel")
      return { consumerTag: "ctag" }
    },
    ack: (m: ConsumeMessage) => settle(`ack ${idOf(m)}`),
    nack: (m: ConsumeMessage, _all: boolean, requeue: boolean) => settle(`nack ${idOf(m)} ${requeue ? "requeue" : "drop"}`),
    close: () => {
      calls.push("close channel")
      return options.closeHangs ? new Promise<void>(() => {}) : Promise.resolve()
    }
  })
  const connection = Object.assign(new EventEmitter(), {
    createChannel: async () => channel,
    close: async () => void calls.push("close connection"),
    connection: {}
  }) as unknown as ChannelModel
  const message = (id: string) =>
    ({ content: Buffer.from(id), fields: { deliveryTag: 1 }, properties: { messageId: id } }) as unknown as ConsumeMessage
  return {
    calls,
    connection,
    deliver: (id: string) => deliver(message(id)),
    /** The channel closes under the consumer (the broker went away). */
    lose: () => {
      closed = true
      channel.emit("close")
    }
  }
}

describe("AmqpConsumer (stand-in channel)", () => {
  it.effect("cancel first; messages waiting for a slot go back at once, unstarted; the one in hand is acked; then the channel closes", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const broker = standIn()
        yield* AmqpConsumer.make("orders", {
          connection: broker.connection,
          queue: "orders",
          concurrency: 1,
          prefetch: 3,
          process: () => Effect.sleep("5 seconds")
        })
        for (const id of ["a", "b", "c"]) broker.deliver(id)
        yield* TestClock.adjust("1 second")
        const report = yield* runToReport({ reason: "test" })
        assert.deepStrictEqual(broker.calls, [
          "prefetch 3",
          "cancel",
          "nack b requeue",
          "nack c requeue",
          "ack a",
          "close channel"
        ])
        assert.deepInclude(section(report, "amqp orders"), { delivered: 3, acked: 1, requeued: 2, inFlight: 0, waiting: 0 })
        assert.strictEqual(stepNamed(report, "orders: cancel consumer").phase, "stopAccepting")
        assert.strictEqual(stepNamed(report, "orders").phase, "drain")
        assert.strictEqual(stepNamed(report, "orders: close channel").outcome, "ok")
      })))

  it.effect("at the soft deadline a message that hands itself back is requeued; one that ignores it is interrupted at the hard deadline and requeued", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const broker = standIn()
        yield* AmqpConsumer.make("orders", {
          connection: broker.connection,
          queue: "orders",
          concurrency: 2,
          process: (m) =>
            idOf(m) === "polite"
              ? Drain.untilWrapUp(Effect.sleep("1 hour"), Effect.succeed(AmqpConsumer.HandBack))
              : Effect.sleep("1 hour")
        })
        broker.deliver("polite")
        broker.deliver("stubborn")
        const report = yield* runToReport({ reason: "test" })
        assert.includeMembers(broker.calls, ["nack polite requeue", "nack stubborn requeue"])
        assert.isFalse(broker.calls.some((c) => c.startsWith("ack ")), broker.calls.join(", "))
        const stats = section(report, "amqp orders") as { requeuedBy: Record<string, number> }
        assert.deepStrictEqual(stats.requeuedBy, { unstarted: 0, requested: 1, interrupted: 1 })
      })))

  it.effect("a failed message is rejected (not requeued) by default, requeued with onFailure: requeue", () =>
    Effect.gen(function*() {
      for (const [onFailure, expected] of [[undefined, "nack x drop"], ["requeue", "nack x requeue"]] as const) {
        const broker = standIn()
        yield* withShutdown(budget, ({ runToReport }) =>
          Effect.gen(function*() {
            yield* AmqpConsumer.make("orders", {
              connection: broker.connection,
              queue: "orders",
              process: () => Effect.fail("boom"),
              ...(onFailure === undefined ? {} : { onFailure })
            })
            broker.deliver("x")
            yield* TestClock.adjust("1 second")
            const report = yield* runToReport({ reason: "test" })
            assert.include(broker.calls, expected)
            assert.deepInclude(section(report, "amqp orders"), { rejected: 1, acked: 0 })
          }))
      }
    }))

  it.effect("the channel closing under the consumer interrupts the message in hand (nothing can ack it), starts the shutdown, and fails the close step saying so", () =>
    withShutdown(budget, ({ runToReport, shutdown }) =>
      Effect.gen(function*() {
        const broker = standIn()
        const interrupted = yield* Deferred.make<void>()
        yield* AmqpConsumer.make("orders", {
          connection: broker.connection,
          queue: "orders",
          process: () => Effect.sleep("1 hour").pipe(Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)))
        })
        broker.deliver("x")
        yield* TestClock.adjust("1 second")
        broker.lose()
        yield* Deferred.await(interrupted)
        const reason = yield* shutdown.awaitStart
        assert.include(JSON.stringify(reason), "amqp orders: the channel closed under the consumer")
        const report = yield* runToReport()
        assert.deepInclude(section(report, "amqp orders"), { delivered: 1, acked: 0, lostWithChannel: 1, inFlight: 0 })
        const step = stepNamed(report, "orders: close channel")
        assert.strictEqual(step.outcome, "failed")
        assert.include(step.detail, "the channel closed under the consumer")
        assert.notInclude(broker.calls, "close channel", "a lost channel is not closed again")
      })))

  it.effect("a channel close that hangs is given up at 80 % of the cleanup allowance, and the step says so", () =>
    withShutdown(budget, ({ runToReport }) =>
      Effect.gen(function*() {
        const broker = standIn({ closeHangs: true })
        yield* AmqpConsumer.make("orders", { connection: broker.connection, queue: "orders", process: () => Effect.void })
        const report = yield* runToReport({ reason: "test" })
        const step = stepNamed(report, "orders: close channel")
        assert.strictEqual(step.outcome, "failed")
        assert.include(step.detail, "the close did not finish within 3200 ms")
        assert.notInclude(step.detail, "socket destroyed", "the caller's connection is left alone")
      })))
})
