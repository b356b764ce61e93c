/**
 * The winddown demo: a small job service that loses nothing across restarts.
 *
 *   npm start                      (PORT=3000 DATA_DIR=./data WORKERS=4 HEALTH_PORT=)
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm start    (a replica of a fleet)
 *   curl -X POST localhost:3000/jobs -d '{"ms":3000}'
 *   curl localhost:3000/jobs/<id>
 *   kill -TERM <pid>  (or Ctrl+C)  and watch the shutdown
 *   node --import tsx demo/main.ts --check    (validate the settings and exit)
 *
 * It starts in this order, and refuses at the first problem with one line and
 * an exit code (README, "Operating it"): the settings, the data directory and
 * its lock (one instance per directory), the journal, the ports; then the
 * service, whose listeners are bound before any worker takes a job.
 *
 * Jobs are journaled (fsync) before the 202; workers take pending jobs; on
 * SIGTERM readiness goes off, the listener closes, requests and jobs drain
 * (or checkpoint), the journal closes, and the report is printed.
 *
 * With DATABASE_URL the jobs live in a PostgreSQL table instead (`PgJobs.ts`),
 * shared by any number of replicas: no data directory, no lock, no journal.
 * The start checks the settings, the server and the table, then the ports;
 * on SIGTERM checkpointed jobs go back to the table for another replica, and
 * the pool closes after the drain.
 */
import { NodeRuntime } from "@effect/platform-node"
import { ConfigProvider, Context, Effect, Layer, type Scope } from "effect"
import { HttpRouter } from "effect/http"
import * as http from "node:http"
import { Health, Shutdown, Worker } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"
import { limits, routes } from "./Api.ts"
import * as DemoConfig from "./Config.ts"
import * as DataDir from "./DataDir.ts"
import * as Jobs from "./Jobs.ts"
import type * as PgJobs from "./PgJobs.ts"
import * as Journal from "./Journal.ts"
import * as Listen from "./Listen.ts"
import { Refusal, report } from "./Refusal.ts"

const say = (line: string) => Effect.logInfo(`[demo] ${line}`)

/** Errors the library reports for `WINDDOWN_*` become refusals too: one line, exit 78. */
const fromLibrary = <E extends { readonly _tag: string; readonly message: string }>(e: E): E | Refusal =>
  e._tag === "ShutdownConfigError" || e._tag === "BudgetError" ? new Refusal({ reason: "setting", message: e.message }) : e

const createServer = () =>
  http.createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // How often Node checks those two timeouts (its default is 30 s).
    connectionsCheckingInterval: 1_000
  })

/** The service itself, inside the Shutdown: everything it starts is drained and closed in order. */
const serve = <C, E, R>(
  config: DemoConfig.DemoConfig,
  open: Effect.Effect<Jobs.Jobs<C>, E, R>
) =>
  Effect.gen(function*() {
    const jobs = yield* open

    // Listen before any worker starts: a port lost since the check stops the
    // start before a job is taken.
    const server = yield* Layer.build(
      NodeHttpDrain.layer(HttpRouter.serve(routes(jobs), { disableListenLog: true, disableLogger: true }), {
        port: config.port,
        host: config.host,
        createServer
      })
    ).pipe(
      Effect.mapError((e) => e._tag === "ServeError" ? Listen.refusal("PORT", config.host, config.port, e.cause) : e)
    )
    if (config.healthPort !== undefined) {
      const healthPort = config.healthPort
      const probes = yield* Layer.build(NodeHealth.layerServer({ port: healthPort, host: config.host })).pipe(
        Effect.mapError((e) => Listen.refusal("HEALTH_PORT", config.host, healthPort, e.cause ?? e))
      )
      yield* say(`probes on http://localhost:${Context.get(probes, NodeHealth.ProbeServer).port}/readyz (/livez, /startupz)`)
    }

    yield* Worker.make("jobs", {
      take: jobs.take,
      process: jobs.run,
      concurrency: config.workers,
      requeue: jobs.requeue
    })
    yield* Health.markStarted
    const { port } = Context.get(server, NodeHttpDrain.Server)
    const counts = yield* Effect.result(jobs.counts)
    const shown = counts._tag === "Failure"
      ? ""
      : `: ${counts.success.pending} pending, ${config.database === undefined ? "" : `${counts.success.running} running, `}${counts.success.done} done`
    yield* say(`listening on http://localhost:${port} (pid ${process.pid}); ${jobs.description}${shown}`)
    yield* say(`try:  curl -X POST localhost:${port}/jobs -d '{"ms":3000}'   then   curl localhost:${port}/jobs/<id>`)
    yield* say(`stop: Ctrl+C, or kill -TERM ${process.pid}`)
    return yield* Effect.never
  })

/** The embedded store inside the Shutdown: the journal closes in cleanup, after the jobs drained. */
const openJournal = (journal: Journal.Journal) =>
  Effect.gen(function*() {
    // A cleanup step: the journal closes after the jobs drained.
    yield* Shutdown.addStep("close journal", journal.close)
    yield* Health.addCheck("journal", Effect.suspend(() => journal.healthy() ? Effect.void : Effect.fail("cannot record jobs")))
    for (const warning of journal.warnings) yield* Effect.logWarning(`[demo] ${warning}`)
    return yield* Jobs.make(journal)
  })

/** The service and its Shutdown, once everything it needs has been checked. */
const run = <C, E extends { readonly _tag: string; readonly message: string }>(
  config: DemoConfig.DemoConfig,
  open: Effect.Effect<Jobs.Jobs<C>, E, Shutdown.Shutdown | Health.Health | Scope.Scope>
) =>
  serve(config, open).pipe(
    Effect.provide(Health.layer()),
    Effect.provide(NodeShutdown.layerConfig(DemoConfig.shutdownDefaults)),
    Effect.mapError(fromLibrary)
  )

/** A port in use (or a HOST that is not ours) refuses now, with one line, rather than in the middle of a started service. */
const probePorts = (config: DemoConfig.DemoConfig) =>
  Effect.gen(function*() {
    yield* Listen.probe("PORT", config.host, config.port)
    if (config.healthPort !== undefined) yield* Listen.probe("HEALTH_PORT", config.host, config.healthPort)
  })

/**
 * One replica of a fleet on PostgreSQL. No data directory and no instance
 * lock: many replicas on one table are the point, and the table's claims keep
 * them from running a job twice.
 */
const fleet = (config: DemoConfig.DemoConfig, database: DemoConfig.Database) =>
  Effect.gen(function*() {
    // Loaded only in this mode: the embedded demo never loads the SQL client.
    const Pg: typeof PgJobs = yield* Effect.promise(() => import("./PgJobs.ts"))
    const replica = Pg.replicaId()
    yield* Pg.prepare(database, replica)
    yield* probePorts(config)
    return yield* run(config, Pg.open(database, replica, config.workers))
  })

const main = Effect.gen(function*() {
  const config = yield* DemoConfig.check
  if (process.argv.includes("--check")) {
    return yield* Effect.sync(() => void process.stdout.write("[demo] settings ok\n"))
  }
  if (config.database !== undefined) return yield* fleet(config, config.database)
  const dir = yield* DataDir.prepare(config.dataDir)
  // Released last, after the shutdown below has finished with the journal.
  yield* DataDir.lock(dir, config.dataDir)
  // The journal opens before the Shutdown and closes in its cleanup phase
  // (or here, if the start fails).
  const journal = yield* Effect.acquireRelease(
    Effect.mapError(Journal.open(dir), (e) => new Refusal({ reason: "journal", message: e.message })),
    (j) => j.close
  )
  yield* probePorts(config)
  return yield* run(config, openJournal(journal))
})

NodeRuntime.runMain(main.pipe(Effect.scoped, report, Effect.provideService(ConfigProvider.ConfigProvider, DemoConfig.environment())))
