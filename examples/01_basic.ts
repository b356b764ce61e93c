/**
 * 01 basic: a service with a database-like resource and a named step, stopped
 * by SIGTERM or Ctrl+C. Run it, then press Ctrl+C (or `kill -TERM <pid>`).
 *
 *   node --import tsx examples/01_basic.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { Shutdown } from "winddown"
import { NodeShutdown } from "winddown/node"

const ShutdownLive = NodeShutdown.layer({ timeout: "10 seconds" })

// A resource acquired with plain acquireRelease: its release becomes a step
// of the `cleanup` phase, because the layer provides that phase as the Scope.
const openDb = Effect.log("db: connected").pipe(Effect.as({ close: Effect.log("db: closed") }))

const program = Effect.gen(function*() {
  yield* Effect.acquireRelease(openDb, (db) => db.close)
  yield* Shutdown.addStep("flush metrics", Effect.log("metrics flushed"), { phase: "flush", timeout: "2 seconds" })
  yield* Effect.log(`serving as pid ${process.pid}; stop with Ctrl+C or: kill -TERM ${process.pid}`)
  yield* Effect.never // the service's work; interrupted by the first signal
})

NodeRuntime.runMain(program.pipe(Effect.provide(ShutdownLive)))
