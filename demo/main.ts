/**
 * The winddown demo: a small job service that loses nothing across restarts.
 *
 *   npm start                      (PORT=3000 DATA_DIR=./data WORKERS=4 HEALTH_PORT=)
 *   curl -X POST localhost:3000/jobs -d '{"ms":3000}'
 *   curl localhost:3000/jobs/<id>
 *   kill -TERM <pid>  (or Ctrl+C)  and watch the shutdown
 *
 * Jobs are journaled (fsync) before the 202; workers take pending jobs; on
 * SIGTERM readiness goes off, the listener closes, requests and jobs drain
 * (or checkpoint), the journal closes, and the report is printed.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Context, Effect, Layer, Queue } from "effect"
import { HttpRouter } from "effect/http"
import * as fs from "node:fs"
import { Health, Shutdown, Worker } from "winddown"
import { NodeHealth, NodeHttpDrain, NodeShutdown } from "winddown/node"
import { routes } from "./Api.ts"
import * as DemoConfig from "./Config.ts"
import * as Jobs from "./Jobs.ts"
import * as Journal from "./Journal.ts"

const say = (line: string) => Effect.logInfo(`[demo] ${line}`)

const main = Effect.gen(function*() {
  const config = yield* DemoConfig.load
  // A cleanup step: the journal closes after the jobs drained.
  yield* Effect.sync(() => fs.mkdirSync(config.dataDir, { recursive: true }))
  const journal = yield* Shutdown.acquireRelease("close journal", Journal.open(config.dataDir), (j) => j.close)
  for (const warning of journal.warnings) yield* Effect.logWarning(`[demo] ${warning}`)
  const jobs = Jobs.make(journal)
  const queue = yield* Queue.unbounded<string>()
  for (const job of jobs.pending()) yield* Queue.offer(queue, job.id)

  yield* Worker.make("jobs", {
    take: queue,
    process: jobs.run,
    concurrency: config.workers,
    // The journal already holds the checkpoint; in memory, the job waits in the queue.
    requeue: (id) => Queue.offer(queue, id)
  })

  const http = yield* Layer.build(
    NodeHttpDrain.layer(HttpRouter.serve(routes(jobs, queue), { disableListenLog: true, disableLogger: true }), {
      port: config.port,
      host: config.host
    })
  )
  if (config.healthPort !== undefined) {
    const probes = yield* Layer.build(NodeHealth.layerServer({ port: config.healthPort, host: config.host }))
    yield* say(`probes on http://localhost:${Context.get(probes, NodeHealth.ProbeServer).port}/readyz (/livez, /startupz)`)
  }
  yield* Health.markStarted
  const { port } = Context.get(http, NodeHttpDrain.Server)
  const counts = jobs.counts()
  yield* say(`listening on http://localhost:${port} (pid ${process.pid}); ${journal.description}: ${counts.pending} pending, ${counts.done} done`)
  yield* say(`try:  curl -X POST localhost:${port}/jobs -d '{"ms":3000}'   then   curl localhost:${port}/jobs/<id>`)
  yield* say(`stop: Ctrl+C, or kill -TERM ${process.pid}`)
  return yield* Effect.never
})

const ShutdownLive = NodeShutdown.layerConfig({ timeout: "25 seconds", reportSummary: true })

NodeRuntime.runMain(main.pipe(Effect.provide(Health.layer()), Effect.provide(ShutdownLive)))
