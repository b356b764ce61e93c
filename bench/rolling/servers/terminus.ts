/**
 * The rolling bench's job service on a plain `node:http` server under
 * `@godaddy/terminus`, configured as its README advises for Kubernetes:
 * readiness from terminus's own `healthChecks` (503 from the signal on),
 * `beforeShutdown` as the pre-stop delay (`PRE_STOP_MS`, the harness gives it
 * winddown's), `useExit0`, and `timeout` (stoppable's grace for requests)
 * raised from 1 s to `GRACE_MS`. `onSignal` stops the job slots, waits for
 * the jobs in hand and ends the pool. Jobs: `pgJobs.ts` (node-postgres, one
 * transaction per job).
 */
import { createTerminus } from "@godaddy/terminus"
import * as http from "node:http"
import * as PgJobs from "./pgJobs.ts"
import * as Schema from "./schema.ts"

const config = Schema.env()
const jobs = PgJobs.make(config, "terminus-rolling")

const send = (res: http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const url = req.url ?? "/"
  const path = url.split("?", 1)[0]!
  const fail = (e: Error) => send(res, 503, { error: e.message })
  if (req.method === "POST" && path === "/jobs") {
    void PgJobs.readJson(req).then((body) => {
      const ms = Schema.parseJobBody(body)
      if (ms === undefined) return send(res, 400, { error: Schema.badJobBody })
      jobs.accept(ms).then((id) => send(res, 202, { id }), fail)
    })
  } else if (req.method === "GET" && path.startsWith("/jobs/")) {
    jobs.get(decodeURIComponent(path.slice(6))).then(
      (row) => (row === undefined ? send(res, 404, { error: "no such job" }) : send(res, 200, Schema.jobView(row))),
      fail
    )
  } else if (req.method === "GET" && path === "/work") {
    const ms = Schema.parseWorkMs(url)
    if (ms === undefined) return send(res, 400, { error: Schema.badWorkMs })
    setTimeout(() => send(res, 200, { worked: ms }), ms)
  } else {
    send(res, 404, { error: "not found" })
  }
}

await jobs.ensureTable()
const slots = jobs.start()
const server = http.createServer(handler)
createTerminus(server, {
  signals: ["SIGTERM", "SIGINT"],
  healthChecks: { "/readyz": async () => {}, "/livez": async () => {} },
  beforeShutdown: () => new Promise((resolve) => setTimeout(resolve, config.preStopMs)),
  onSignal: async () => {
    await jobs.stop(slots)
    await jobs.pool.end()
  },
  timeout: config.graceMs,
  useExit0: true,
  logger: (message, error) => console.error(`[rolling] terminus: ${message}`, error)
})
server.listen(config.port, config.host, () => console.log(`[rolling] terminus replica pid ${process.pid} on ${config.host}:${config.port}`))
