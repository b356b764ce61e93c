// RabbitMQ consumers (winddown/amqp) under real signals, against the real
// broker, in child processes (test/fixtures/amqp_consumer.ts): a message that
// runs past the drain is checkpointed and requeued, messages waiting for a
// slot go back at once, and another consumer resumes them; under a steady
// stream of published messages (publisher confirms), random SIGTERM restarts
// process every message exactly once and SIGKILLs lose none; an unreachable
// broker fails the startup with one line; a connection closed by the broker
// during the drain is reported and the process still exits in its budget.
// Each test has its own queue and checkpoint directory, removed afterwards.
import { afterEach, assert, describe, it } from "@effect/vitest"
import * as amqp from "amqplib"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { promisify } from "node:util"
import { AmqpConsumer } from "../src/amqp/index.ts"
import { Shutdown } from "../src/index.ts"
import { eventually, spawnFixture, trackChildren } from "./support/children.ts"
import { reportFromOutput, section, stepNamed } from "./support/report.ts"
import {
  assertConfigRefusal,
  assertExactlyOnce,
  assertNoneLost,
  cleanExit,
  completions,
  finish,
  killInTurn,
  mixedDuration,
  produce
} from "./support/consumers.ts"
import { closedPort } from "./support/http.ts"
import { addresses, requireServices, uniqueName } from "./support/services.ts"

const services = await requireServices(["rabbitmq"])
trackChildren()

const url = `amqp://guest:guest@${addresses.rabbitmq.host}:${addresses.rabbitmq.port}`
const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Setup {
  readonly queue: string
  readonly env: Record<string, string>
  readonly channel: amqp.ConfirmChannel
  /** Publish one message and wait for the broker's confirm; resolves with its id. */
  readonly publish: (body: { ms: number; stubborn?: boolean }) => Promise<string>
  readonly depth: () => Promise<number>
}

const setup = async (): Promise<Setup> => {
  const queue = uniqueName("winddown-amqp")
  const checkpoints = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-amqp-"))
  const connection = await amqp.connect(url)
  const channel = await connection.createConfirmChannel()
  await channel.assertQueue(queue, { durable: false })
  cleanups.push(async () => {
    await channel.deleteQueue(queue)
    await connection.close()
    fs.rmSync(checkpoints, { recursive: true, force: true })
  })
  let seq = 0
  const publish = (body: { ms: number; stubborn?: boolean }) =>
    new Promise<string>((resolve, reject) => {
      const id = `m${seq++}`
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(body)), { messageId: id }, (error) => error ? reject(error) : resolve(id))
    })
  const depth = async () => (await channel.checkQueue(queue)).messageCount
  const env = {
    QUEUE: queue,
    CHECKPOINTS: checkpoints,
    AMQP_PORT: String(addresses.rabbitmq.port),
    CONNECTION_NAME: queue
  }
  return { queue, env, channel, publish, depth }
}

const consumer = async (env: Record<string, string>) => {
  const child = spawnFixture("amqp_consumer.ts", env, { killAfterMs: 120_000 })
  await child.waitFor(/^ready \d+/, 30_000)
  return child
}

describe("AmqpConsumer options", () => {
  // Checked before any connection is opened: no broker needed.
  const makeWith = (options: Partial<AmqpConsumer.Options<never>>) =>
    Effect.runPromise(
      Effect.flip(
        AmqpConsumer.make("messages", {
          queue: "q",
          connection: "amqp://127.0.0.1:1",
          process: () => Effect.void,
          ...options
        }).pipe(Effect.provide(Shutdown.layerTest()), Effect.scoped)
      )
    )

  it("a bad concurrency, prefetch, queue, process or onFailure fails with one line naming it", async () => {
    for (const [options, message] of [
      [{ concurrency: 0 }, "concurrency: expected a whole number from 1 to 65535, got 0"],
      [{ concurrency: 4, prefetch: 2 }, "prefetch: expected at least concurrency (4)"],
      [{ queue: "" }, `queue: expected a non-empty name, got ""`],
      [{ process: undefined as never }, "process: expected a function"],
      [{ onFailure: "drop" as never }, `onFailure: expected one of reject, requeue, got "drop"`],
      [{ connection: 5 as never }, "connection: expected an amqp:// URL"]
    ] as const) {
      assertConfigRefusal(await makeWith(options), message)
    }
  })
})

describe.runIf(services.ok)("RabbitMQ consumer (winddown/amqp) under signals", () => {
  it("SIGTERM: the consumer is cancelled, waiting messages go back at once, a long one checkpoints at the soft deadline, a stubborn one is interrupted at the hard deadline; all are requeued and another consumer finishes each once", async () => {
    const { env, publish, depth } = await setup()
    const a = await consumer(env)
    // Concurrency 4, prefetch 8: two long ones and two 3 s ones run, four wait for a slot.
    const long = await publish({ ms: 6000 })
    const stubborn = await publish({ ms: 6000, stubborn: true })
    const medium = await Promise.all([0, 1].map(() => publish({ ms: 3000 })))
    const waiting = await Promise.all([0, 1, 2, 3].map(() => publish({ ms: 100 })))
    await a.waitFor(`start ${medium[1]}`)
    await eventually("all eight delivered", async () => (await depth()) === 0)
    a.signal("SIGTERM")
    // A message published once the consumer was cancelled stays in the queue.
    await a.waitFor("\"messages: cancel consumer\" done")
    const late = await publish({ ms: 100 })
    const exit = await cleanExit(a, "consumer A")
    assert.include(exit.output, `checkpoint ${long} at`)
    assert.include(exit.output, `interrupted ${stubborn} at`)
    for (const id of waiting) assert.notInclude(exit.output, `start ${id}\n`, "a waiting message was started after the cancel")
    const report = reportFromOutput(exit.output)
    const stats = section(report, "amqp messages") as { requeuedBy: Record<string, number> } & Record<string, unknown>
    assert.deepInclude(stats, { delivered: 8, acked: 0, inFlight: 0, waiting: 0, lostWithChannel: 0 }, exit.output)
    // The medium ones checkpoint at the soft deadline like the long one.
    assert.deepStrictEqual(stats.requeuedBy, { unstarted: 4, requested: 3, interrupted: 1 }, exit.output)
    assert.strictEqual(stepNamed(report, "messages: close channel").outcome, "ok")
    assert.strictEqual(await depth(), 9, "every message is back in the queue, with the late one")

    const b = await consumer(env)
    const all = [long, stubborn, ...medium, ...waiting, late]
    await eventually("all nine done", () => completions([a, b]).size === all.length, 30_000)
    const exitB = await cleanExit((b.signal("SIGTERM"), b), "consumer B")
    assert.match(exitB.output, new RegExp(`resumed ${long} at [1-9]\\d*/6000`))
    assert.match(exitB.output, new RegExp(`resumed ${stubborn} at [1-9]\\d*/6000`))
    assert.deepStrictEqual(completions([a, b]), new Map(all.map((id) => [id, 1])))
  }, 60_000)

  it("6 random SIGTERM restarts of two consumers under a steady stream of confirmed messages: none lost, none processed twice", async () => {
    const { env, publish } = await setup()
    const slots = [await consumer(env), await consumer(env)]
    const all = [...slots]
    const producer = produce(publish, 100, mixedDuration)
    let requeued = 0
    for (let restart = 0; restart < 6; restart++) {
      const slot = restart % 2
      await slots[slot]!.waitFor(/^ready \d+/, 30_000)
      await sleep(300 + Math.floor(Math.random() * 1700))
      slots[slot]!.signal("SIGTERM")
      const exit = await cleanExit(slots[slot]!, `restart ${restart}`)
      const stats = section(reportFromOutput(exit.output), "amqp messages")
      assert.strictEqual(stats.lostWithChannel, 0, exit.output)
      requeued += Number(stats.requeued)
      slots[slot] = spawnFixture("amqp_consumer.ts", env, { killAfterMs: 120_000 })
      all.push(slots[slot]!)
    }
    const { done, ids } = await finish(producer, slots, all)
    assertExactlyOnce(ids, done)
    console.log(`${ids.length} messages, 6 SIGTERM restarts, ${requeued} requeued: each processed once`)
  }, 120_000)

  it("SIGKILL restarts under a steady stream of confirmed messages: none lost (the broker redelivers)", async () => {
    const { env, publish } = await setup()
    const slots = [await consumer(env), await consumer(env)]
    const all = [...slots]
    const producer = produce(publish, 100, () => 20 + Math.floor(Math.random() * 600))
    await killInTurn(slots, all, () => spawnFixture("amqp_consumer.ts", env, { killAfterMs: 120_000 }))
    const { done, ids } = await finish(producer, slots, all)
    const { redelivered, twice } = assertNoneLost(ids, done, all)
    console.log(`${ids.length} messages, 3 SIGKILLs: none lost, ${redelivered} redelivered, ${twice} processed twice (allowed on SIGKILL)`)
  }, 120_000)

  it("an unreachable broker at startup stops the program with one line naming it and its address", async () => {
    const port = await closedPort()
    const child = spawnFixture("amqp_consumer.ts", { QUEUE: uniqueName("winddown-amqp"), AMQP_PORT: String(port) })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("ResourceUnavailable"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `RabbitMQ at 127.0.0.1:${port} is unreachable: connect ECONNREFUSED`)
    assert.notMatch(output, /^\s+at /m, "no stack frames")
    assert.notInclude(output, "ready")
  })

  it("a queue that does not exist stops the program with one line naming it", async () => {
    const queue = uniqueName("winddown-amqp-missing")
    const child = spawnFixture("amqp_consumer.ts", { QUEUE: queue, AMQP_PORT: String(addresses.rabbitmq.port) })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("AmqpConsumeFailed"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `cannot consume from queue "${queue}" at 127.0.0.1:${addresses.rabbitmq.port}: `)
    assert.include(lines[0], "NOT_FOUND")
    assert.notMatch(output, /^\s+at /m, "no stack frames")
  })

  it("the queue is deleted under a running consumer: the broker cancels it, the shutdown starts by itself, and the report says why", async () => {
    const { queue, env, channel } = await setup()
    const a = await consumer(env)
    await channel.deleteQueue(queue)
    const exit = await cleanExit(a, "consumer A")
    const report = reportFromOutput(exit.output)
    assert.strictEqual(report.reason._tag, "manual", exit.output)
    const step = stepNamed(report, "messages: close channel")
    assert.strictEqual(step.outcome, "failed", exit.output)
    assert.include(step.detail, `the broker cancelled the consumer of queue "${queue}"`)
  }, 60_000)

  it("the broker closes the connection during the drain: the message in hand is interrupted (the broker requeued it), the cleanup step fails saying so, and the process exits in its budget", async () => {
    const { env: base, publish, depth } = await setup()
    // A long drain (about 11 s of a 20 s budget): rabbitmqctl can take seconds on a loaded machine.
    const env: Record<string, string> = { ...base, WINDDOWN_TIMEOUT: "20s" }
    const a = await consumer(env)
    const id = await publish({ ms: 60_000, stubborn: true })
    await a.waitFor(`start ${id}`)
    // The broker's name for the consumer's connection (set by the fixture).
    const run = promisify(execFile)
    const { stdout } = await run("rabbitmqctl", ["list_connections", "pid", "client_properties", "--quiet", "--no-table-headers"])
    const pid = stdout.split("\n").find((l) => l.includes(`"${env.CONNECTION_NAME}"`))?.split("\t")[0]
    assert.isDefined(pid, stdout)
    a.signal("SIGTERM")
    await a.waitFor("\"messages: cancel consumer\" done")
    await run("rabbitmqctl", ["close_connection", pid!, "winddown test: the broker goes away"])
    const exit = await cleanExit(a, "consumer A")
    const report = reportFromOutput(exit.output)
    assert.isBelow(report.durationMs, report.timeoutMs, exit.output)
    assert.include(exit.output, `interrupted ${id} at`)
    assert.notInclude(exit.output, `done ${id}`)
    // Interrupted when the connection went, not at the drain's deadline.
    assert.strictEqual(stepNamed(report, "messages").outcome, "ok", exit.output)
    const step = stepNamed(report, "messages: close channel")
    assert.strictEqual(step.outcome, "failed", exit.output)
    assert.include(step.detail, "CONNECTION_FORCED", exit.output)
    assert.include(step.detail, "could not be acked or nacked", exit.output)
    assert.notInclude(step.detail, "did not finish", "closing what is already closed must not wait")
    assert.deepInclude(section(report, "amqp messages"), { delivered: 1, acked: 0, lostWithChannel: 1, inFlight: 0 }, exit.output)
    // The broker put it back when the connection closed.
    assert.strictEqual(await depth(), 1)
  }, 60_000)
})
