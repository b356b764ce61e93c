/**
 * The rolling bench's job service on Fastify 5 under close-with-grace, as in
 * close-with-grace's README: on SIGTERM it calls `app.close()` within `delay`
 * (`GRACE_MS`; past it, exit 1). Fastify's own close answers new requests 503
 * (`return503OnClosing`) and closes idle connections (`forceCloseConnections:
 * "idle"`). Neither has a readiness probe or a pre-stop delay: `/readyz` is a
 * plain route that answers 503 from the signal on. The pool and the job slots
 * end in an `onClose` hook, Fastify's place for them. Jobs: `pgJobs.ts`
 * (node-postgres, one transaction per job).
 */
import closeWithGrace from "close-with-grace"
import Fastify from "fastify"
import * as PgJobs from "./pgJobs.ts"
import * as Schema from "./schema.ts"

const config = Schema.env()
const jobs = PgJobs.make(config, "fastify-rolling")
let closing = false

const app = Fastify({ logger: false })
app.post("/jobs", async (request, reply) => {
  const ms = Schema.parseJobBody(request.body)
  if (ms === undefined) return reply.code(400).send({ error: Schema.badJobBody })
  try {
    return reply.code(202).send({ id: await jobs.accept(ms) })
  } catch (e) {
    return reply.code(503).send({ error: (e as Error).message })
  }
})
app.get<{ Params: { id: string } }>("/jobs/:id", async (request, reply) => {
  const row = await jobs.get(request.params.id)
  return row === undefined ? reply.code(404).send({ error: "no such job" }) : Schema.jobView(row)
})
app.get("/work", async (request, reply) => {
  const ms = Schema.parseWorkMs(request.url)
  if (ms === undefined) return reply.code(400).send({ error: Schema.badWorkMs })
  await new Promise((resolve) => setTimeout(resolve, ms))
  return { worked: ms }
})
app.get("/readyz", async (_request, reply) => reply.code(closing ? 503 : 200).send({ status: closing ? "shuttingDown" : "ok" }))
app.get("/livez", async () => ({ status: "ok" }))

await jobs.ensureTable()
const slots = jobs.start()
app.addHook("onClose", async () => {
  await jobs.stop(slots)
  await jobs.pool.end()
})

closeWithGrace({ delay: config.graceMs }, async ({ err }) => {
  closing = true
  if (err) console.error(err)
  await app.close()
})
await app.listen({ port: config.port, host: config.host })
console.log(`[rolling] fastify replica pid ${process.pid} on ${config.host}:${config.port}`)
