// BullMQ workers (winddown/bullmq) under real signals, against the real
// Redis, in child processes (test/fixtures/bullmq_worker.ts): a job that runs
// past the drain is checkpointed and handed back, never left locked, and
// another worker resumes it; under a steady stream of jobs, random SIGTERM
// restarts complete every job exactly once and SIGKILLs lose none. Each test
// has its own queue and completion key, removed afterwards.
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Queue } from "bullmq"
import { Redis } from "ioredis"
import { setTimeout as sleep } from "node:timers/promises"
import { Effect } from "effect"
import { BullWorker } from "../src/bullmq/index.ts"
import { Shutdown } from "../src/index.ts"
import { ChildProcess } from "../src/testing/index.ts"
import { reportFromOutput, section } from "./support/report.ts"
import { eventually, spawnFixture, trackChildren } from "./support/children.ts"
import { assertConfigRefusal, cleanExit, mixedDuration, produce } from "./support/consumers.ts"
import { addresses, requireServices, uniqueName } from "./support/services.ts"
import { closedPort } from "./support/http.ts"

const services = await requireServices(["redis"])
trackChildren()

const connection = { host: addresses.redis.host, port: addresses.redis.port }
const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const setup = () => {
  const name = uniqueName("winddown-bullmq")
  const completions = `${name}:completions`
  const queue = new Queue(name, { connection })
  const redis = new Redis({ ...connection, maxRetriesPerRequest: 1 })
  cleanups.push(async () => {
    await queue.obliterate({ force: true })
    await redis.del(completions)
    await queue.close()
    await redis.quit()
  })
  const env = { QUEUE: name, COMPLETIONS: completions, REDIS_PORT: String(connection.port) }
  const counts = async () => {
    const raw = await redis.hgetall(completions)
    return new Map(Object.entries(raw).map(([id, n]) => [id, Number(n)]))
  }
  return { name, queue, redis, env, counts }
}

const worker = async (env: Record<string, string>) => {
  const child = spawnFixture("bullmq_worker.ts", env, { killAfterMs: 150_000 })
  await child.waitFor(/^ready \d+/, 30_000)
  return child
}

/** Wait for a child that got its SIGTERM: exit 0, and no job of it went through the stalled check. */
const stalledFree = (child: ChildProcess.Child, label: string) => cleanExit(child, label, ["stalled"])

const stop = (child: ChildProcess.Child, label: string) => {
  child.signal("SIGTERM")
  return stalledFree(child, label)
}

/** Add a job every `everyMs` until stopped (see `produce`); resolves with the ids added. */
const addJobs = (queue: Queue, everyMs: number, ms: () => number) =>
  produce((data) => queue.add("work", data).then((job) => job.id!), everyMs, ms)

describe("BullWorker options", () => {
  // Checked before any connection is opened: no Redis needed.
  const makeWith = (options: Partial<BullWorker.Options<never>>) =>
    Effect.runPromise(
      Effect.flip(
        BullWorker.make("jobs", {
          queue: "q",
          connection: { host: "127.0.0.1", port: 1 },
          process: () => Effect.void,
          ...options
        }).pipe(Effect.provide(Shutdown.layerTest()), Effect.scoped)
      )
    )

  it("a bad concurrency, queue or process fails with one line naming it", async () => {
    for (const [options, message] of [
      [{ concurrency: 0 }, "concurrency: expected a whole number from 1 to any, got 0"],
      [{ queue: "" }, `queue: expected a non-empty name, got ""`],
      [{ process: undefined as never }, "process: expected a function"]
    ] as const) {
      assertConfigRefusal(await makeWith(options), message)
    }
  })
})

describe.runIf(services.ok)("BullMQ worker (winddown/bullmq) under signals", () => {
  it("SIGTERM: the worker stops fetching; a long job checkpoints at the soft deadline, a stubborn one is interrupted at the hard deadline; both are handed back unlocked and another worker resumes them", async () => {
    const { name, queue, redis, env, counts } = setup()
    const a = await worker(env)
    const long = await queue.add("work", { ms: 6000 })
    const stubborn = await queue.add("work", { ms: 6000, stubborn: true })
    await eventually("both jobs active", async () => (await queue.getActiveCount()) === 2)
    await sleep(500)
    a.signal("SIGTERM")
    // A job added once the worker stopped fetching stays in the queue, unprocessed.
    await a.waitFor("\"jobs: stop fetching\" done")
    const late = await queue.add("work", { ms: 100 })
    const exit = await stalledFree(a, "worker A")
    assert.include(exit.output, `checkpoint ${long.id} at`)
    assert.include(exit.output, `interrupted ${stubborn.id} at`)
    const report = reportFromOutput(exit.output)
    const stats = section(report, "bullmq jobs") as { handedBackBy: Record<string, number> } & Record<string, unknown>
    assert.deepInclude(stats, { completed: 0, inFlight: 0, failed: 0, handBackFailed: 0 }, exit.output)
    assert.deepInclude(stats.handedBackBy, { requested: 1, interrupted: 1 }, exit.output)
    // BullMQ's close() can still finish one fetch that was under way (its
    // blocking wait, cut by the close, returns into a fetch that does not
    // check for closing): such a job arrives after the drain closed and is
    // handed straight back, unprocessed.
    assert.isAtMost(stats.handedBackBy.refused!, 1, exit.output)
    const untouched = (await queue.getJob(late.id!))!
    assert.strictEqual(await untouched.getState(), "waiting")
    assert.isFalse((await counts()).has(late.id!), "the late job was processed by the stopping worker")
    assert.strictEqual(report.phases.find((p) => p.phase === "cleanup")!.steps[0]!.name, "jobs: close worker")

    // Back in the wait list with their checkpoints, no lock left to expire.
    for (const job of [long, stubborn]) {
      const fresh = (await queue.getJob(job.id!))!
      assert.strictEqual(await fresh.getState(), "waiting")
      assert.isAbove(Number(fresh.progress), 0)
      assert.strictEqual(await redis.exists(`bull:${name}:${job.id}:lock`), 0)
    }

    const b = await worker(env)
    await eventually("all three jobs completed", async () => (await queue.getCompletedCount()) === 3, 30_000)
    const exitB = await stop(b, "worker B")
    assert.match(exitB.output, new RegExp(`resumed ${long.id} at [1-9]\\d*/6000`))
    assert.match(exitB.output, new RegExp(`resumed ${stubborn.id} at [1-9]\\d*/6000`))
    assert.deepStrictEqual(await counts(), new Map([[long.id!, 1], [stubborn.id!, 1], [late.id!, 1]]))
  }, 90_000)

  it("10 random SIGTERM restarts of two workers under a steady stream of jobs: every job completes exactly once", async () => {
    const { queue, env, counts } = setup()
    const slots = [await worker(env), await worker(env)]
    const producer = addJobs(queue, 100, mixedDuration)
    let handedBack = 0
    for (let restart = 0; restart < 10; restart++) {
      const slot = restart % 2
      await slots[slot]!.waitFor(/^ready \d+/, 30_000)
      await sleep(300 + Math.floor(Math.random() * 1700))
      const exit = await stop(slots[slot]!, `restart ${restart}`)
      handedBack += Number(section(reportFromOutput(exit.output), "bullmq jobs").handedBack)
      slots[slot] = spawnFixture("bullmq_worker.ts", env, { killAfterMs: 150_000 })
    }
    const ids = await producer.stop()
    await eventually(`all ${ids.length} jobs completed`, async () => (await counts()).size >= ids.length, 60_000, 200)
    await Promise.all(slots.map((s, i) => s.waitFor(/^ready \d+/, 30_000).then(() => stop(s, `final ${i}`))))

    const completed = await counts()
    const twice = [...completed].filter(([, n]) => n !== 1)
    assert.deepStrictEqual(twice, [], `jobs completed more than once (of ${ids.length})`)
    assert.deepStrictEqual(ids.filter((id) => !completed.has(id)), [], "jobs never completed")
    assert.strictEqual(await queue.getFailedCount(), 0)
    console.log(`${ids.length} jobs, 10 SIGTERM restarts, ${handedBack} handed back: each completed once`)
  }, 150_000)

  it("SIGKILL restarts under a steady stream of jobs: no job is lost (at least once)", async () => {
    const { queue, env: base, counts } = setup()
    // Short locks so that BullMQ's stalled check returns a killed worker's jobs quickly.
    const env = { ...base, LOCK_MS: "2000", STALLED_MS: "1000" }
    const slots = [await worker(env), await worker(env)]
    const all = [...slots]
    const producer = addJobs(queue, 100, () => 20 + Math.floor(Math.random() * 600))
    for (let restart = 0; restart < 4; restart++) {
      const slot = restart % 2
      await slots[slot]!.waitFor(/^ready \d+/, 30_000)
      await sleep(300 + Math.floor(Math.random() * 1200))
      // Killed with jobs in hand, so that BullMQ's stalled check has work.
      await eventually("jobs active", async () => (await queue.getActiveCount()) >= 2, 10_000, 20)
      slots[slot]!.signal("SIGKILL")
      await slots[slot]!.exited
      slots[slot] = spawnFixture("bullmq_worker.ts", env, { killAfterMs: 150_000 })
      all.push(slots[slot]!)
    }
    const ids = await producer.stop()
    await eventually(`all ${ids.length} jobs completed`, async () => (await counts()).size >= ids.length, 60_000, 200)
    await Promise.all(slots.map((s) => s.waitFor(/^ready \d+/, 30_000).then(() => s.signal("SIGTERM"))))
    await Promise.all(slots.map((s) => s.exited))

    const completed = await counts()
    assert.deepStrictEqual(ids.filter((id) => !completed.has(id)), [], "jobs lost")
    assert.strictEqual(await queue.getFailedCount(), 0)
    const again = [...completed.values()].filter((n) => n > 1).length
    const stalled = all.reduce((n, c) => n + (c.output().match(/^stalled /gm)?.length ?? 0), 0)
    assert.isAbove(stalled, 0, "no job came back through the stalled check: the kills missed every job")
    console.log(
      `${ids.length} jobs, 4 SIGKILLs: none lost, ${stalled} returned by the stalled check, ${again} completed more than once (allowed on SIGKILL)`
    )
  }, 150_000)

  it("an unreachable Redis at startup stops the program with one line naming it and its address", async () => {
    const port = await closedPort()
    const child = spawnFixture("bullmq_worker.ts", { QUEUE: uniqueName("winddown-bullmq"), REDIS_PORT: String(port) })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("ResourceUnavailable"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `Redis at 127.0.0.1:${port} is unreachable: connect ECONNREFUSED`)
    assert.notMatch(output, /^\s+at /m, "no stack frames")
    assert.notInclude(output, "ready")
  })
})
