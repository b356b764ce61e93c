/**
 * 07 database connection pool (the seed's pool use case): queries check out a
 * connection and run as units of a drain, so the pool's `close` step, in
 * `cleanup`, only starts after every query in flight has finished or been
 * interrupted (its rollback finalizer returns the connection first): no
 * connection is closed under a running query. The graceful close is bounded
 * by a timeout and falls back to forced termination.
 *
 * A "report" query takes 20 s, longer than the drain allowance: at the soft
 * deadline it is asked to wrap up and ignores it, at the hard deadline it is
 * interrupted and rolls back. `Drain.waitFor` shows the seed's
 * `wait(lambda: active_connections == 0)` as a report entry.
 *
 *   node --import tsx examples/07_db_pool.ts
 *   then Ctrl+C, or: kill -TERM <pid>
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Schedule } from "effect"
import { Drain, Shutdown, Worker } from "winddown"
import { NodeShutdown } from "winddown/node"

/** A fake pool: `checkedOut` is the seed's `active_connections`. */
const makePool = (size: number) => {
  let checkedOut = 0
  let open = true
  const withConnection = <A, E, R>(use: (id: number) => Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(
      Effect.suspend(() => {
        if (!open) return Effect.die(new Error("pool closed while a query wanted a connection"))
        return Effect.succeed(++checkedOut)
      }),
      use,
      () => Effect.sync(() => void checkedOut--)
    )
  // Graceful close: wait for connections to come back (the drain already
  // made sure they did), then say goodbye to the server: slow on purpose.
  const close = Effect.gen(function*() {
    if (checkedOut > 0) yield* Effect.log(`pool: ${checkedOut} connections still checked out!`)
    yield* Effect.sleep("300 millis")
    open = false
    yield* Effect.log(`pool: closed gracefully (${size} connections)`)
  })
  const terminate = Effect.sync(() => void (open = false)).pipe(Effect.andThen(Effect.log("pool: terminated")))
  return { withConnection, close, terminate, checkedOut: () => checkedOut }
}

const program = Effect.gen(function*() {
  const pool = makePool(10)
  const queries = yield* Drain.make("queries")

  const query = (sql: string, ms: number) =>
    queries.runJoin(
      pool.withConnection((conn) =>
        Effect.sleep(ms).pipe(
          Effect.andThen(Effect.log(`conn ${conn}: ${sql} (${ms} ms) ok`)),
          Effect.onInterrupt(() => Effect.log(`conn ${conn}: ${sql} interrupted, rolled back`))
        )
      )
    )

  // The pool closes in cleanup: after the drain phase, bounded, with a fallback.
  yield* Shutdown.addStep(
    "close pool",
    pool.close.pipe(Effect.timeoutOrElse({ duration: "1 second", orElse: () => pool.terminate })),
    { timeout: "2 seconds" }
  )
  // The seed's wait: reported as section "wait connections returned".
  yield* Drain.waitFor("connections returned", () => pool.checkedOut() === 0, { pollInterval: "50 millis" })

  // Load: a short query every 200 ms (stops at stopAccepting), one long report.
  let n = 0
  yield* Worker.repeat(
    "load",
    Effect.suspend(() => Effect.forkDetach(query(`SELECT ${++n}`, 300 + Math.floor(Math.random() * 1500)))),
    { schedule: Schedule.spaced("200 millis") }
  )
  yield* Effect.forkDetach(query("SELECT * FROM report", 20_000))

  yield* Effect.log(`pid ${process.pid}: stop with Ctrl+C or kill -TERM ${process.pid} (twice to force)`)
  return yield* Effect.never
})

NodeRuntime.runMain(
  program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "6 seconds", preStop: "0 seconds", reportJson: true })))
)
