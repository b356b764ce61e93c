// A real PostgreSQL pool (@effect/sql-pg) under a real SIGTERM, in a child
// process (test/fixtures/sql_pool.ts; the plain pg.Pool recipe: pg_pool.ts):
// what is in flight completes, what runs past the hard deadline rolls back,
// the pool closes after the drain and leaves no connection behind; a dead
// server mid-drain and an unreachable one at startup are reported, not hung
// on. The table and the application_name are unique per test; the table is
// dropped afterwards.
import { afterEach, assert, describe, it } from "@effect/vitest"
import * as http from "node:http"
import pg from "pg"
import { failedUnits, reportFromOutput, stepNamed } from "./support/report.ts"
import { eventually, spawnFixture, trackChildren } from "./support/children.ts"
import { addresses, postgresUrl, requireServices, uniqueName } from "./support/services.ts"
import { closedPort } from "./support/http.ts"

const services = await requireServices(["postgres"])
trackChildren()

const query = async <R extends pg.QueryResultRow = any>(text: string, values: Array<unknown> = []) => {
  const client = new pg.Client({ connectionString: postgresUrl, application_name: "winddown-sql-test" })
  await client.connect()
  try {
    return (await client.query<R>(text, values)).rows
  } finally {
    await client.end()
  }
}

const tables: Array<string> = []
afterEach(async () => {
  if (!services.ok) return
  for (const table of tables.splice(0)) await query(`DROP TABLE IF EXISTS ${table}`)
})

const setup = async () => {
  const table = uniqueName("winddown_sql")
  tables.push(table)
  await query(`CREATE TABLE ${table} (id int PRIMARY KEY, note text)`)
  return { table, appName: uniqueName("winddown-sql") }
}

const connections = async (appName: string, state?: string) =>
  Number(
    (await query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 ${state ? "AND state = $2" : ""}`,
      state ? [appName, state] : [appName]
    ))[0]!.n
  )

interface Answer {
  readonly status?: number
  readonly body?: string
  readonly error?: string
}

const request = (port: number, method: string, path: string) =>
  new Promise<Answer>((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.once("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }))
      res.once("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
    })
    req.once("error", (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }))
    req.end()
  })

const portOf = async (child: ReturnType<typeof spawnFixture>) =>
  Number(/listening on (\d+)/.exec(await child.waitFor(/listening on \d+/, 30_000))![1])


describe.runIf(services.ok)("PostgreSQL pools (@effect/sql-pg, pg.Pool) under SIGTERM", () => {
  it("in-flight work completes, a transaction past the hard deadline rolls back, the pool closes after the drain, no connection is left", async () => {
    const { table, appName } = await setup()
    const child = spawnFixture("sql_pool.ts", { TABLE: table, APP_NAME: appName, WINDDOWN_TIMEOUT: "6s" })
    const port = await portOf(child)
    assert.strictEqual((await request(port, "GET", "/query?ms=1")).status, 200)

    const shortQuery = request(port, "GET", "/query?ms=1500")
    const shortTx = request(port, "POST", "/tx?id=1&ms=1500")
    const longTx = request(port, "POST", "/tx?id=2&ms=60000")
    await child.waitFor("tx 1: inserted")
    await child.waitFor("tx 2: inserted")
    // All three are running on the server when the signal comes.
    await eventually("3 active queries", async () => (await connections(appName, "active")) >= 3)
    child.signal("SIGTERM")

    await child.waitFor("\"http: close listener\" done")
    const late = await request(port, "GET", "/query?ms=1")
    assert.strictEqual(late.error, "ECONNREFUSED", `a request after the listener closed: ${JSON.stringify(late)}`)

    assert.deepStrictEqual(await shortQuery, { status: 200, body: "query 1500 ms ok" })
    assert.deepStrictEqual(await shortTx, { status: 200, body: "tx 1 committed" })
    const long = await longTx
    assert.notStrictEqual(long.status, 200, `the 60 s transaction answered: ${JSON.stringify(long)}`)

    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    const report = reportFromOutput(output)
    assert.isAtMost(report.durationMs, report.timeoutMs, output)
    const pool = stepNamed(report, "db pool")
    assert.deepStrictEqual([pool.phase, pool.outcome], ["cleanup", "ok"], output)
    // The rollback ran before the pool closed, and nothing met a closed pool.
    const rolledBack = output.indexOf("tx 2: interrupted, rolled back")
    assert.isAbove(rolledBack, -1, output)
    assert.isBelow(rolledBack, output.indexOf("\"db pool\" done"), output)
    assert.include(output, "jobs: refused after the drain began")
    assert.notMatch(output, /request error|job error|connection closed|pool.{0,20}closed/i)

    assert.deepStrictEqual(await query(`SELECT id FROM ${table} ORDER BY id`), [{ id: 1 }])
    await eventually("no connection of the child", async () => (await connections(appName)) === 0, 10_000)
  })

  it("the server kills the connection mid-drain: the job's failure is in the report and the process exits inside its budget", async () => {
    const { table, appName } = await setup()
    const child = spawnFixture("sql_pool.ts", {
      TABLE: table,
      APP_NAME: appName,
      WINDDOWN_TIMEOUT: "6s",
      LONG_JOB_MS: "20000"
    })
    await child.waitFor("long job: running")
    await eventually("the long job on the server", async () => (await connections(appName, "active")) >= 1)
    child.signal("SIGTERM")
    await child.waitFor("[winddown] drain:")
    await query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [appName])

    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    assert.include(output, "long job failed")
    const report = reportFromOutput(output)
    assert.isAtLeast(failedUnits(report, "jobs"), 1, output)
    assert.isAtMost(report.durationMs, report.timeoutMs, output)
    assert.strictEqual(stepNamed(report, "db pool").phase, "cleanup")
    await eventually("no connection of the child", async () => (await connections(appName)) === 0, 10_000)
  })

  it("the plain pg.Pool recipe: a query in flight completes, later ones are refused by the drain, pool.end() runs in cleanup, no connection is left", async () => {
    const appName = uniqueName("winddown-pg")
    const child = spawnFixture("pg_pool.ts", { APP_NAME: appName, QUERY_MS: "1500", WINDDOWN_TIMEOUT: "6s" })
    await child.waitFor(/^ready \d+/, 30_000)
    await child.waitFor("long query: running")
    await eventually("the long query on the server", async () => (await connections(appName, "active")) >= 1)
    child.signal("SIGTERM")
    const { code, output } = await child.exited
    assert.strictEqual(code, 0, output)
    assert.include(output, "long query: done")
    assert.include(output, "queries: refused after the drain began")
    assert.notMatch(output, /query error|Cannot use a pool|Client was closed/i)
    const report = reportFromOutput(output)
    const pool = stepNamed(report, "pg pool")
    assert.deepStrictEqual([pool.phase, pool.outcome], ["cleanup", "ok"], output)
    assert.isBelow(output.indexOf("long query: done"), output.indexOf("\"pg pool\" done"), output)
    await eventually("no connection of the child", async () => (await connections(appName)) === 0, 10_000)
  })

  it("an unreachable server at startup stops the program with one line naming it and its address", async () => {
    const port = await closedPort()
    const child = spawnFixture("sql_pool.ts", { PGPORT: String(port), APP_NAME: uniqueName("winddown-sql") })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("ResourceUnavailable"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `PostgreSQL at ${addresses.postgres.host}:${port} is unreachable: connect ECONNREFUSED`)
    assert.notMatch(output, /^\s+at /m, "no stack frames")
    assert.notInclude(output, "listening on")
  })
})
