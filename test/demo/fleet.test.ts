/**
 * The demo as a fleet (DATABASE_URL): replicas on free ports share one
 * PostgreSQL table (unique per test, dropped afterwards), jobs are submitted
 * to any of them while they are stopped and started again.
 *
 * - SIGTERM at random moments: every acknowledged job is done with
 *   `completions` 1, no run was a takeover (no lease ever ran out: the work
 *   itself ran once), every run resumed from where the previous one stopped,
 *   and a job checkpointed by a stopping replica was finished by another.
 * - SIGKILL: nothing acknowledged is lost; the killed replica's job is taken
 *   over by another once its lease has run out (at least once).
 * - Startup refusals against the real server: one line, the documented code.
 *
 * Every child is SIGKILLed when its test ends, passed or failed (`session`).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import * as fs from "node:fs"
import pg from "pg"
import * as DemoConfig from "../../demo/Config.ts"
import * as PgJobs from "../../demo/PgJobs.ts"
import { exitCodes, line, Refusal } from "../../demo/Refusal.ts"
import { closedPort } from "../support/http.ts"
import { postJob, request, type Running, session, tempDir } from "../support/demo.ts"
import { postgresUrl, requireServices, uniqueName } from "../support/services.ts"

const services = await requireServices(["postgres"])

const db = new pg.Pool({ connectionString: postgresUrl, max: 2, application_name: "winddown-fleet-test" })
afterAll(() => db.end())

const query = async <R extends pg.QueryResultRow = any>(text: string, values: Array<unknown> = []) =>
  (await db.query<R>(text, values)).rows

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const until = async (what: string, condition: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await sleep(100)
  }
}

interface Event {
  readonly t: "started" | "checkpointed" | "handedBack" | "completed"
  readonly replica: string
  readonly run: number
  readonly progressMs?: number
  readonly tookOverFrom?: string
}

interface Row {
  readonly id: string
  readonly ms: number
  readonly status: string
  readonly runs: number
  readonly completions: number
  readonly history: ReadonlyArray<Event>
}

/** A fleet on one table: its replicas, and a submitter that posts to any of them. */
const fleet = (onTestFinished: (f: () => Promise<void>) => void, env: Record<string, string>) => {
  const table = uniqueName("fleet")
  onTestFinished(async () => void (await query(`DROP TABLE IF EXISTS ${table}`)))
  const { startDemo } = session(onTestFinished)
  // Every replica is given the same data directory: nothing may be written or locked in it.
  const dataDir = tempDir("fleet")
  const live = new Set<Running & { readonly replica: string }>()
  const start = async () => {
    const running = await startDemo(dataDir, {
      DATABASE_URL: postgresUrl,
      JOBS_TABLE: table,
      WORKERS: "2",
      WINDDOWN_TIMEOUT: "4s",
      ...env
    })
    const replica = /replica (\S+?):/.exec(running.child.output())![1]!
    const member = { ...running, replica }
    live.add(member)
    void running.child.exited.then(() => live.delete(member))
    return member
  }
  const acked: Array<string> = []
  let submitting = true
  /**
   * Posts jobs (20 to 300 ms, one in ten 1 to 2 s) to random live replicas until stopped: about
   * half of what the replicas can run, so that a restart does not leave a backlog to wait for.
   */
  const submitter = (async () => {
    for (let i = 0; submitting; i++) {
      const targets = [...live]
      const target = targets[Math.floor(Math.random() * targets.length)]
      if (target !== undefined) {
        const ms = i % 10 === 9 ? 1_000 + Math.floor(Math.random() * 1_000) : 20 + Math.floor(Math.random() * 280)
        try {
          const answer = await postJob(target.port, ms)
          if (answer.status === 202) acked.push(answer.json.id)
        } catch {
          // refused or reset while stopping: not acknowledged, so not promised
        }
      }
      await sleep(40 + Math.random() * 80)
    }
  })()
  const stopSubmitting = async () => {
    submitting = false
    await submitter
  }
  /** Post a job of `ms` and wait until a replica runs it: the id and the replica running it. */
  const longJob = async (ms: number) => {
    const target = [...live][0]!
    const answer = await postJob(target.port, ms)
    assert.strictEqual(answer.status, 202, answer.text)
    const id: string = answer.json.id
    acked.push(id)
    let owner: string | undefined
    await until(`job ${id} running`, async () => {
      owner = (await query(`SELECT owner FROM ${table} WHERE id = $1 AND status = 'running'`, [id]))[0]?.owner
      return owner !== undefined
    }, 20_000)
    const holder = [...live].find((r) => r.replica === owner)
    assert.isDefined(holder, `job ${id} runs on ${owner}, which is not one of ours`)
    return { id, holder: holder! }
  }
  const rows = async (): Promise<ReadonlyArray<Row>> =>
    query(`SELECT id, ms, status, runs, completions, history FROM ${table} WHERE id = ANY($1)`, [acked])
  const allDone = (timeoutMs = 60_000) =>
    until("every acknowledged job done", async () =>
      Number((await query(`SELECT count(*) AS n FROM ${table} WHERE id = ANY($1) AND status <> 'done'`, [acked]))[0].n) === 0, timeoutMs)
  const stopAll = async () => {
    const exits = await Promise.all([...live].map(async (r) => {
      r.child.signal("SIGTERM")
      return r.child.exited
    }))
    for (const exit of exits) assert.strictEqual(exit.code, 0, exit.output)
  }
  return { table, dataDir, live, start, acked, stopSubmitting, longJob, rows, allDone, stopAll }
}

/** How a stop by SIGTERM must end: exit 0, every step ok. */
const assertCleanStop = (exit: { readonly code: number | null; readonly output: string }, context: string) => {
  assert.strictEqual(exit.code, 0, `${context}:\n${exit.output}`)
  assert.match(exit.output, /shutdown complete in \d+ ms: \d+ steps, 0 not ok, exit code 0/, `${context}:\n${exit.output}`)
}

describe.runIf(services.ok).concurrent("the demo as a fleet on PostgreSQL (DATABASE_URL)", () => {
  it("3 replicas, SIGTERM at random moments while jobs arrive: every acknowledged job done exactly once, checkpoints resumed by another replica", async ({ onTestFinished }) => {
    const f = fleet(onTestFinished, { JOBS_LEASE_MS: "10000" })
    await Promise.all([f.start(), f.start(), f.start()])
    const moments: Array<string> = []
    const checkpointed: Array<{ readonly id: string; readonly by: string }> = []
    const restarts: Array<Promise<unknown>> = []
    for (let cycle = 0; cycle < 3; cycle++) {
      // The replacement of the last replica stopped starts meanwhile (starting is what takes time here).
      await until("two replicas serving", async () => f.live.size >= 2)
      await sleep(200 + Math.random() * 800)
      // A job too long for the drain (4 s budget: soft deadline at about 1.8 s), so the stopping
      // replica must checkpoint it; the signal comes at a random moment of its run.
      const { holder, id } = await f.longJob(6_000)
      const moment = Math.floor(Math.random() * 1_000)
      moments.push(`${moment} ms into ${id}`)
      await sleep(moment)
      holder.child.signal("SIGTERM")
      assertCleanStop(await holder.child.exited, `cycle ${cycle}, SIGTERM ${moment} ms into job ${id}`)
      checkpointed.push({ id, by: holder.replica })
      restarts.push(f.start())
    }
    await Promise.all(restarts)
    await f.stopSubmitting()
    const context = `SIGTERM at ${moments.join(", ")}`
    assert.isAbove(f.acked.length, 30, `${context}: too few jobs to mean anything`)
    await f.allDone()
    // The API shows what the table holds, from any replica.
    const any = [...f.live][0]!
    const shown = await request(any.port, { path: `/jobs/${checkpointed[0]!.id}` })
    assert.strictEqual(shown.json.completions, 1, shown.text)
    assert.isTrue(shown.json.history.some((e: Event) => e.t === "checkpointed"), shown.text)
    await f.stopAll()

    const rows = await f.rows()
    assert.strictEqual(rows.length, f.acked.length, `${context}: acknowledged jobs missing from the table`)
    const wrong: Array<string> = []
    for (const row of rows) {
      const why = (problem: string) => wrong.push(`${row.id} (${row.ms} ms): ${problem}: ${JSON.stringify(row.history)}`)
      if (row.status !== "done" || row.completions !== 1) why(`${row.status}, completions ${row.completions}`)
      const starts = row.history.filter((e) => e.t === "started")
      if (starts.length !== row.runs) why(`runs ${row.runs}, ${starts.length} starts`)
      if (row.history.some((e) => e.tookOverFrom !== undefined)) why("taken over after a lease ran out")
      // Runs follow one another: each starts where the previous one stopped, and only the last completes.
      let progress = 0
      row.history.forEach((e, i) => {
        const starting = i % 2 === 0
        if (starting !== (e.t === "started")) why(`event ${i} is ${e.t}`)
        if (e.t === "started" && e.progressMs !== progress) why(`run ${e.run} started at ${e.progressMs}, not ${progress}`)
        if (e.t === "checkpointed" || e.t === "handedBack") progress = e.progressMs!
        if (e.t === "completed" && i !== row.history.length - 1) why("completed before its last event")
      })
    }
    assert.deepStrictEqual(wrong, [], context)

    // Each long job was checkpointed by the replica that stopped, and finished by another from there.
    for (const { by, id } of checkpointed) {
      const { history } = rows.find((r) => r.id === id)!
      const at = history.findIndex((e) => e.t === "checkpointed" && e.replica === by)
      assert.isAbove(at, -1, `${id} was not checkpointed by ${by}: ${JSON.stringify(history)}`)
      const stoppedAt = history[at]!.progressMs!
      assert.isAbove(stoppedAt, 0, `${id}: checkpointed with no progress: ${JSON.stringify(history)}`)
      const resumed = history[at + 1]!
      assert.strictEqual(resumed.t, "started")
      assert.notStrictEqual(resumed.replica, by, `${id} resumed by the replica that stopped: ${JSON.stringify(history)}`)
      assert.strictEqual(resumed.progressMs, stoppedAt)
      assert.strictEqual(history[history.length - 1]!.t, "completed")
    }
    // No replica wrote or locked anything in the data directory they were all given.
    assert.deepStrictEqual(fs.readdirSync(f.dataDir), [])
  }, 180_000)

  it("SIGKILL while a replica holds jobs: after the lease runs out another replica takes them over; every acknowledged job is done (at least once)", async ({ onTestFinished }) => {
    const f = fleet(onTestFinished, { JOBS_LEASE_MS: "1500" })
    await Promise.all([f.start(), f.start()])
    const killed: Array<{ readonly id: string; readonly replica: string }> = []
    const restarts: Array<Promise<unknown>> = []
    for (let cycle = 0; cycle < 2; cycle++) {
      await until("a replica serving", async () => f.live.size >= 1)
      await sleep(200 + Math.random() * 600)
      const { holder, id } = await f.longJob(3_000)
      await sleep(Math.random() * 800)
      holder.child.signal("SIGKILL")
      await holder.child.exited
      killed.push({ id, replica: holder.replica })
      restarts.push(f.start())
    }
    await Promise.all(restarts)
    await f.stopSubmitting()
    await f.allDone()
    await f.stopAll()
    const rows = await f.rows()
    assert.strictEqual(rows.length, f.acked.length, "acknowledged jobs missing from the table")
    const notDone = rows.filter((r) => r.status !== "done" || r.completions < 1)
    assert.deepStrictEqual(notDone.map((r) => `${r.id}: ${r.status}`), [])
    // The completion is written by one run even when the work ran twice.
    assert.deepStrictEqual(rows.filter((r) => r.completions !== 1).map((r) => r.id), [])
    for (const { id, replica } of killed) {
      const { history } = rows.find((r) => r.id === id)!
      const takeover = history.find((e) => e.t === "started" && e.tookOverFrom === replica)
      assert.isDefined(takeover, `${id}: no takeover from the killed ${replica}: ${JSON.stringify(history)}`)
      assert.notStrictEqual(takeover!.replica, replica)
    }
  }, 180_000)

  it("refuses to start with one line: an unreachable server (75), a login it refuses (78), a table that is not a jobs table (74, left untouched)", async ({ onTestFinished }) => {
    const table = uniqueName("fleet_other")
    onTestFinished(async () => void (await query(`DROP TABLE IF EXISTS ${table}`)))
    await query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text)`)
    const port = await closedPort()
    const url = new URL(postgresUrl)
    const unreachable = `postgres://postgres@127.0.0.1:${port}/test`
    const wrongUser = `postgres://nobody_${process.pid}:secret@${url.host}${url.pathname}`
    // The checks main.ts runs before it starts anything, against the real server (a process each would
    // cost seconds of start-up on a loaded machine); one real start below shows the line and the code.
    const cases = [
      { env: { DATABASE_URL: unreachable }, code: 75, says: `DATABASE_URL="${unreachable}": PostgreSQL at 127.0.0.1:${port} is unreachable: connect ECONNREFUSED` },
      { env: { DATABASE_URL: wrongUser }, code: 78, says: `DATABASE_URL="postgres://nobody_${process.pid}:***@${url.host}${url.pathname}": PostgreSQL at ${url.host} refused the connection: ` },
      { env: { DATABASE_URL: postgresUrl, JOBS_TABLE: table }, code: 74, says: `JOBS_TABLE="${table}": the table ${table} in PostgreSQL at ` }
    ]
    for (const { code, env, says } of cases) {
      const refusal = await Effect.runPromise(
        DemoConfig.check.pipe(
          Effect.flatMap(({ database }) => PgJobs.prepare(database!, "fleet-test")),
          Effect.flip,
          Effect.provideService(ConfigProvider.ConfigProvider, DemoConfig.environment(env))
        )
      )
      const context = `${JSON.stringify(env)}: ${refusal.message}`
      assert.instanceOf(refusal, Refusal, context)
      assert.strictEqual(exitCodes[refusal.reason], code, context)
      assert.match(line(refusal), /^\[demo\] refused to start: [^\n]+$/, context)
      assert.include(refusal.message, says, context)
      assert.notInclude(refusal.message, "secret", context)
    }
    // The foreign table was not changed.
    const columns = await query(`SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY column_name`, [table])
    assert.deepStrictEqual(columns.map((c) => c.column_name), ["id", "name"])

    const { runDemo } = session(onTestFinished)
    const exit = await runDemo({ PORT: "0", DATA_DIR: tempDir("fleet-refused"), DATABASE_URL: unreachable })
    assert.strictEqual(exit.code, 75, exit.output)
    assert.match(exit.output, new RegExp(`^\\[demo\\] refused to start: DATABASE_URL="${unreachable}": PostgreSQL at 127\\.0\\.0\\.1:${port} is unreachable: [^\\n]+\\n$`))
  }, 120_000)
})
