// Shutdown.layer against a real program fiber: it interrupts the program it
// is provided to, and says so clearly when a parallel layer build hides the
// program from it.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger } from "effect"
import { Shutdown } from "../src/index.ts"

const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => void lines.push(Array.isArray(message) ? message.join(" ") : String(message)))
  return { lines, layer: Logger.layer([logger]) }
}

const program = Effect.gen(function*() {
  yield* Shutdown.trigger("admin endpoint")
  yield* Effect.sleep("200 millis")
  return "not interrupted"
})

describe("Shutdown.layer", () => {
  it.live("a manual trigger interrupts the program the layer is provided to", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(program.pipe(Effect.provide(Shutdown.layer({ timeout: "5 seconds" }))))
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.hasInterrupts(exit), String(exit))
    }))

  it.live("built inside Layer.mergeAll it cannot see the program, and warns how to provide it", () =>
    Effect.gen(function*() {
      const { lines, layer } = capture()
      const Both = Layer.mergeAll(Shutdown.layer({ timeout: "5 seconds" }), Layer.empty)
      const fiber = yield* Effect.forkChild(program.pipe(Effect.provide(Both), Effect.provide(layer)))
      const exit = yield* Fiber.await(fiber)
      assert.deepStrictEqual(exit, Exit.succeed("not interrupted"))
      assert.isTrue(lines.some((l) => l.includes("cannot interrupt the program") && l.includes("outermost")), lines.join("\n"))
    }))
})
