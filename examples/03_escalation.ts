/**
 * 03 escalation: what the second and third signal do.
 *
 * On the first Ctrl+C the drain uploads 20 buffered batches, one a second:
 * about 20 s of patience. Press Ctrl+C again while it runs and the shutdown is
 * forced: the upload is interrupted (its checkpoint finalizer still runs), the
 * wait in cleanup gives up at once instead of after 3 s, the remaining steps
 * get 1 s each (`forcedStepTimeout`), and the process exits 125. A third
 * Ctrl+C exits at once (130 for SIGINT, 143 for SIGTERM), whatever is running.
 *
 *   node --import tsx examples/03_escalation.ts
 *   then Ctrl+C twice, or: kill -TERM <pid>; sleep 2; kill -TERM <pid>
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { Shutdown } from "winddown"
import { NodeShutdown } from "winddown/node"

const batches = 20

const program = Effect.gen(function*() {
  let uploaded = 0
  yield* Shutdown.addStep(
    "upload buffered events",
    Effect.gen(function*() {
      while (uploaded < batches) {
        yield* Effect.sleep("1 second")
        uploaded++
        yield* Effect.log(`upload: batch ${uploaded}/${batches} sent`)
      }
    }).pipe(
      // Runs on escalation too: interruption runs finalizers, it does not skip them.
      Effect.onInterrupt(() => Effect.log(`upload: interrupted, checkpoint saved (${batches - uploaded} batches kept on disk)`))
    ),
    { phase: "drain" }
  )

  // Cleanup steps run in reverse registration order: leases first, then the db.
  yield* Shutdown.addStep("close db", Effect.log("db closed"))
  yield* Shutdown.addStep(
    "hand over leases",
    Effect.gen(function*() {
      // Nobody takes the leases over in this example: the wait ends at its
      // timeout, or at once when the shutdown is forced.
      const handedOver = yield* Shutdown.wait(() => false, { timeout: "3 seconds" })
      yield* Effect.log(handedOver ? "leases: handed over" : "leases: gave up waiting, they expire by themselves")
    })
  )
  yield* Effect.log(`pid ${process.pid}: press Ctrl+C (or kill -TERM ${process.pid}) once to shut down gracefully (~23 s),`)
  yield* Effect.log("a second time to force it (exit 125), a third time to exit at once")
  return yield* Effect.never
})

NodeRuntime.runMain(program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "40 seconds", preStop: 0 }))))
