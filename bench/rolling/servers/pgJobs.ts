/**
 * Jobs on PostgreSQL with plain node-postgres, as a terminus or Fastify user
 * would keep them without a shutdown library: one transaction per job holding
 * its row lock (`FOR UPDATE SKIP LOCKED`, see `schema.ts`), `workers` slots
 * polling for work, and a `stop()` that stops taking and waits for the jobs
 * in hand. Whatever a dying process still holds is rolled back by the server
 * and taken again by another replica.
 */
import pg from "pg"
import * as Schema from "./schema.ts"

export const make = (config: ReturnType<typeof Schema.env>, applicationName: string) => {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, application_name: applicationName, max: config.workers + 4 })
  // An idle client that loses its server must not crash the process.
  pool.on("error", (e) => console.error(`[rolling] pool: ${e.message}`))
  const q = Schema.txQueue(config.table)
  const t = config.table
  let stopping = false
  const sleepers = new Set<() => void>()
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        sleepers.delete(done)
        resolve()
      }
      sleepers.add(done)
    })

  const runOne = async (): Promise<boolean> => {
    const client = await pool.connect()
    try {
      await client.query("BEGIN")
      const job = (await client.query<{ id: string; ms: number; progress_ms: number }>(q.take)).rows[0]
      if (job === undefined) {
        await client.query("COMMIT")
        return false
      }
      await client.query(q.start, [job.id])
      await new Promise((resolve) => setTimeout(resolve, job.ms - job.progress_ms))
      await client.query(q.complete, [job.id, `worked ${job.ms} ms`])
      await client.query("COMMIT")
      return true
    } catch (e) {
      await client.query("ROLLBACK").catch(() => {})
      throw e
    } finally {
      client.release()
    }
  }

  const slot = async () => {
    while (!stopping) {
      const worked = await runOne().catch((e: Error) => {
        console.error(`[rolling] job failed: ${e.message}`)
        return false
      })
      if (!worked && !stopping) await pause(Schema.pollMs)
    }
  }

  return {
    pool,
    ensureTable: async () => {
      if ((await pool.query<{ present: boolean }>(Schema.tableExists(t))).rows[0]?.present) return
      for (const statement of Schema.createTable(t)) await pool.query(statement)
    },
    start: () => Array.from({ length: config.workers }, slot),
    accept: async (ms: number) => {
      const id = Schema.newJobId()
      await pool.query(`INSERT INTO ${t} (id, ms) VALUES ($1, $2)`, [id, ms])
      return id
    },
    get: async (id: string) => (await pool.query<Schema.JobRow>(Schema.selectJob(t), [id])).rows[0],
    /** Stop taking jobs; resolves once every slot finished the job in hand. */
    stop: (slots: ReadonlyArray<Promise<void>>) => {
      stopping = true
      for (const wake of [...sleepers]) wake()
      return Promise.all(slots).then(() => undefined)
    }
  }
}

/** Read a request body as JSON, up to 16 KiB; undefined when it is not JSON. */
export const readJson = (req: import("node:http").IncomingMessage): Promise<unknown> =>
  new Promise((resolve) => {
    let body = ""
    req.setEncoding("utf8")
    req.on("data", (chunk: string) => {
      body += chunk
      if (body.length > 16 * 1024) req.destroy()
    })
    req.on("end", () => {
      try {
        resolve(JSON.parse(body))
      } catch {
        resolve(undefined)
      }
    })
    req.on("error", () => resolve(undefined))
  })
