import { assert, describe, it } from "@effect/vitest"
import { Data, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Resource } from "../src/index.ts"

class DriverError extends Data.TaggedError("DriverError")<{ readonly message: string; readonly cause: unknown }> {}

describe("Resource.check", () => {
  it.effect("a probe that answers passes its value through", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* Resource.check("PostgreSQL", "127.0.0.1:5432", Effect.succeed(1)), 1)
    }))

  it.effect("a failing probe: one line with the service, the address and the innermost error", () =>
    Effect.gen(function*() {
      const socket = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })
      const error = yield* Effect.flip(
        Resource.check("PostgreSQL", "127.0.0.1:5432", Effect.fail(new DriverError({ message: "Failed to connect", cause: socket })))
      )
      assert.strictEqual(error._tag, "ResourceUnavailable")
      assert.strictEqual(error.reason, "unreachable")
      assert.strictEqual(error.message, "PostgreSQL at 127.0.0.1:5432 is unreachable: connect ECONNREFUSED 127.0.0.1:5432 (after 0 ms)")
      // What runMain prints is the stack: nothing but the message.
      assert.strictEqual(error.stack, `ResourceUnavailable: ${error.message}`)
    }))

  it.effect("a defect in the probe is reported the same way", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Resource.check("Redis", "127.0.0.1:6379", Effect.die(new Error("boom\nmore"))))
      assert.strictEqual(error.message, "Redis at 127.0.0.1:6379 is unreachable: boom (after 0 ms)")
    }))

  it.effect(`a probe that never answers fails at its timeout (default ${Resource.defaults.timeout})`, () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Effect.flip(Resource.check("Redis", "127.0.0.1:6379", Effect.never)))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.reason, "timedOut")
      assert.strictEqual(error.message, "Redis at 127.0.0.1:6379 did not answer within 5000 ms")
    }))

  it.effect("the timeout is an option", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(
        Effect.flip(Resource.check("NATS", "127.0.0.1:4222", Effect.never, { timeout: "1 second" }))
      )
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber)).message, "NATS at 127.0.0.1:4222 did not answer within 1000 ms")
    }))
})
