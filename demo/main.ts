/**
 * The winddown demo: a small job service that loses nothing across restarts.
 *
 *   npm start                      (PORT=3000 DATA_DIR=./data WORKERS=4 HEALTH_PORT=)
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
 */
import { NodeRuntime } from "@effect/platform-node"
import { ConfigProvider, Context, Effect, Layer, Queue } from "effect"
import { HttpRouter } from "effect/http"
import * as http from "node:http"
import { Health, Shutdown, Worker } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"
import { limits, routes } from "./Api.ts"
import * as DemoConfig from "./Config.ts"
import * as DataDir from "./DataDir.ts"
import * as Jobs from "./Jobs.ts"
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
const serve = (config: DemoConfig.DemoConfig, journal: Journal.Journal) =>
  Effect.gen(function*() {
    // A cleanup step: the journal closes after the jobs drained.
    yield* Shutdown.addStep("close journal", journal.close)
    yield* Health.addCheck("journal", Effect.suspend(() => journal.healthy() ? Effect.void : Effect.fail("cannot record jobs")))
    for (const warning of journal.warnings) yield* Effect.logWarning(`[demo] ${warning}`)
    const jobs = Jobs.make(journal)
    const queue = yield* Queue.unbounded<string>()
    for (const job of jobs.pending()) yield* Queue.offer(queue, job.id)

    // Listen before any worker starts: a port lost since the check stops the
    // start before a job is taken.
    const server = yield* Layer.build(
      NodeHttpDrain.layer(HttpRouter.serve(routes(jobs, queue), { disableListenLog: true, disableLogger: true }), {
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
      take: queue,
      process: jobs.run,
      concurrency: config.workers,
      // The journal already holds the checkpoint; in memory, the job waits in the queue.
      requeue: (id) => Queue.offer(queue, id)
    })
    yield* Health.markStarted
    const { port } = Context.get(server, NodeHttpDrain.Server)
    const counts = jobs.counts()
    yield* say(`listening on http://localhost:${port} (pid ${process.pid}); ${journal.description}: ${counts.pending} pending, ${counts.done} done`)
    yield* say(`try:  curl -X POST localhost:${port}/jobs -d '{"ms":3000}'   then   curl localhost:${port}/jobs/<id>`)
    yield* say(`stop: Ctrl+C, or kill -TERM ${process.pid}`)
    return yield* Effect.never
  })

const main = Effect.gen(function*() {
  const config = yield* DemoConfig.check
  if (process.argv.includes("--check")) {
    return yield* Effect.sync(() => void process.stdout.write("[demo] settings ok\n"))
  }
  const dir = yield* DataDir.prepare(config.dataDir)
  // Released last, after the shutdown below has finished with the journal.
  yield* DataDir.lock(dir, config.dataDir)
  // The journal opens before the Shutdown and closes in its cleanup phase
  // (or here, if the start fails).
  const journal = yield* Effect.acquireRelease(
    Effect.mapError(Journal.open(dir), (e) => new Refusal({ reason: "journal", message: e.message })),
    (j) => j.close
  )
  // A port in use (or a HOST that is not ours) refuses now, with one line,
  // rather than in the middle of a started service.
  yield* Listen.probe("PORT", config.host, config.port)
  if (config.healthPort !== undefined) yield* Listen.probe("HEALTH_PORT", config.host, config.healthPort)
  return yield* serve(config, journal).pipe(
    Effect.provide(Health.layer()),
    Effect.provide(NodeShutdown.layerConfig(DemoConfig.shutdownDefaults)),
    Effect.mapError(fromLibrary)
  )
})

NodeRuntime.runMain(main.pipe(Effect.scoped, report, Effect.provideService(ConfigProvider.ConfigProvider, DemoConfig.environment())))
