// NATS JetStream pull consumers (winddown/nats) under real signals, against
// the real server, in child processes (test/fixtures/nats_consumer.ts). The
// consumer's ack_wait is 2 s, shorter than the longest messages: only the
// `working()` heartbeats keep those from being redelivered while they run and
// drain. A message that runs past the drain is checkpointed and nak'ed, and
// another consumer resumes it; under a steady stream of published messages
// (each acknowledged by JetStream), random SIGTERM restarts process every
// message exactly once and SIGKILLs lose none; an unreachable server fails
// the startup with one line; a server that goes away during the drain
// (through a TCP proxy the test cuts) is reported and the process still exits
// in its budget. Each test has its own stream and checkpoint directory,
// removed afterwards.
import { afterEach, assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { AckPolicy, connect, type JetStreamClient, type JetStreamManager, nanos, StorageType } from "nats"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { Shutdown } from "../src/index.ts"
import { JetStreamConsumer } from "../src/nats/index.ts"
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

const services = await requireServices(["nats"])
trackChildren()

const server = `${addresses.nats.host}:${addresses.nats.port}`
const cleanups: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Setup {
  readonly env: Record<string, string>
  /** Publish one message and wait for JetStream's ack; resolves with its id. */
  readonly publish: (body: { ms: number; stubborn?: boolean }) => Promise<string>
  /** Messages not yet acked by the consumer (pending + ack pending). */
  readonly unfinished: () => Promise<number>
  readonly jsm: JetStreamManager
  readonly stream: string
}

const setup = async (): Promise<Setup> => {
  const stream = uniqueName("winddown_nats")
  const subject = `${stream}.work`
  const checkpoints = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-nats-"))
  const nc = await connect({ servers: server })
  const jsm = await nc.jetstreamManager()
  await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.Memory })
  await jsm.consumers.add(stream, {
    durable_name: "workers",
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(2_000),
    max_deliver: -1
  })
  cleanups.push(async () => {
    await jsm.streams.delete(stream)
    await nc.close()
    fs.rmSync(checkpoints, { recursive: true, force: true })
  })
  const js: JetStreamClient = nc.jetstream()
  let seq = 0
  const publish = async (body: { ms: number; stubborn?: boolean }) => {
    const id = `m${seq++}`
    await js.publish(subject, JSON.stringify(body), { msgID: id })
    return id
  }
  const unfinished = async () => {
    const info = await jsm.consumers.info(stream, "workers")
    return info.num_pending + info.num_ack_pending
  }
  const env = { STREAM: stream, CONSUMER: "workers", CHECKPOINTS: checkpoints, NATS_PORT: String(addresses.nats.port) }
  return { env, publish, unfinished, jsm, stream }
}

const consumer = async (env: Record<string, string>) => {
  const child = spawnFixture("nats_consumer.ts", env, { killAfterMs: 120_000 })
  await child.waitFor(/^ready \d+/, 30_000)
  return child
}

/** A TCP proxy to the NATS server that the test can cut: the server "goes away" for the child only. */
const proxy = () =>
  new Promise<{ port: number; cut: () => void }>((resolve) => {
    const sockets = new Set<net.Socket>()
    const listener = net.createServer((client) => {
      const upstream = net.connect(addresses.nats.port, addresses.nats.host)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on("error", () => {})
        s.on("close", () => sockets.delete(s))
      }
      client.pipe(upstream).pipe(client)
    })
    cleanups.push(() => new Promise((done) => listener.close(() => done(undefined))))
    listener.listen(0, "127.0.0.1", () =>
      resolve({
        port: (listener.address() as net.AddressInfo).port,
        cut: () => {
          listener.close()
          for (const s of sockets) s.destroy()
        }
      }))
  })

describe("JetStreamConsumer options", () => {
  const makeWith = (options: Partial<JetStreamConsumer.Options<never>>) =>
    Effect.runPromise(
      Effect.flip(
        JetStreamConsumer.make("messages", {
          connection: { servers: "127.0.0.1:1" },
          stream: "s",
          consumer: "c",
          process: () => Effect.void,
          ...options
        }).pipe(Effect.provide(Shutdown.layerTest()), Effect.scoped)
      )
    )

  it("a bad concurrency, expires, stream, consumer, process or onFailure fails with one line naming it", async () => {
    for (const [options, message] of [
      [{ concurrency: 0 }, "concurrency: expected a whole number from 1 to 10000, got 0"],
      [{ expires: "500 millis" }, `expires: expected a duration of at least 1 second`],
      [{ stream: "" }, `stream: expected a non-empty name, got ""`],
      [{ consumer: "" }, `consumer: expected a non-empty name, got ""`],
      [{ process: undefined as never }, "process: expected a function"],
      [{ onFailure: "drop" as never }, `onFailure: expected one of nak, term, got "drop"`]
    ] as const) {
      assertConfigRefusal(await makeWith(options), message)
    }
  })
})

describe.runIf(services.ok)("NATS JetStream consumer (winddown/nats) under signals", () => {
  it("SIGTERM: pulling stops, a long message checkpoints at the soft deadline, a stubborn one is interrupted at the hard deadline; both are nak'ed, none redelivered while it ran, and another consumer finishes each once", async () => {
    const { env, publish, unfinished } = await setup()
    const a = await consumer(env)
    const long = await publish({ ms: 6000 })
    const stubborn = await publish({ ms: 6000, stubborn: true })
    await a.waitFor(`start ${stubborn}`)
    // Longer than ack_wait (2 s): only working() keeps them from being redelivered.
    await sleep(2500)
    a.signal("SIGTERM")
    await a.waitFor("\"messages: stop pulling\" done")
    const late = await publish({ ms: 100 })
    const exit = await cleanExit(a, "consumer A")
    assert.include(exit.output, `checkpoint ${long} at`)
    assert.include(exit.output, `interrupted ${stubborn} at`)
    assert.notInclude(exit.output, `start ${late}`, "a message published after the stop was started")
    assert.notMatch(exit.output, /redelivered/, "redelivered while it ran: working() did not keep it")
    const report = reportFromOutput(exit.output)
    const stats = section(report, "nats messages") as { nakedBy: Record<string, number> } & Record<string, unknown>
    assert.deepInclude(stats, { acked: 0, failed: 0, inFlight: 0 }, exit.output)
    assert.strictEqual(stats.nakedBy.requested, 1, exit.output)
    assert.strictEqual(stats.nakedBy.interrupted, 1, exit.output)
    assert.strictEqual(stepNamed(report, "messages: close").outcome, "ok", exit.output)
    assert.strictEqual(await unfinished(), 3)

    const b = await consumer(env)
    const all = [long, stubborn, late]
    await eventually("all three done", () => completions([a, b]).size === all.length, 30_000)
    b.signal("SIGTERM")
    const exitB = await cleanExit(b, "consumer B")
    assert.match(exitB.output, new RegExp(`resumed ${long} at [1-9]\\d*/6000`))
    assert.match(exitB.output, new RegExp(`resumed ${stubborn} at [1-9]\\d*/6000`))
    assert.deepStrictEqual(completions([a, b]), new Map(all.map((id) => [id, 1])))
    assert.strictEqual(await unfinished(), 0)
  }, 60_000)

  it("SIGTERM just after a pull request was sent: the drain waits for it to expire, so a cleanup shorter than `expires` does not cut it", async () => {
    const { env, publish, unfinished } = await setup()
    // One slot: the message fills the first pull, and its end sends the next
    // one at once, so at the signal a 1 s pull has (nearly) all of it left,
    // more than the close may wait in the 800 ms cleanup.
    const a = await consumer({ ...env, CONCURRENCY: "1" })
    const id = await publish({ ms: 200 })
    await a.waitFor(`done ${id}`)
    a.signal("SIGTERM")
    const exit = await cleanExit(a, "consumer A")
    const report = reportFromOutput(exit.output)
    assert.strictEqual(stepNamed(report, "messages: close").outcome, "ok", exit.output)
    const lastPull = stepNamed(report, "messages: last pull request")
    assert.strictEqual(lastPull.outcome, "ok", exit.output)
    assert.isAbove(lastPull.durationMs, 300, `the pull had most of its second left:\n${exit.output}`)
    assert.strictEqual(await unfinished(), 0)
  }, 60_000)

  it("6 random SIGTERM restarts of two consumers under a steady stream of published messages: none lost, none processed twice", async () => {
    const { env, publish } = await setup()
    const slots = [await consumer(env), await consumer(env)]
    const all = [...slots]
    const producer = produce(publish, 100, mixedDuration)
    let naked = 0
    for (let restart = 0; restart < 6; restart++) {
      const slot = restart % 2
      await slots[slot]!.waitFor(/^ready \d+/, 30_000)
      await sleep(300 + Math.floor(Math.random() * 1700))
      slots[slot]!.signal("SIGTERM")
      const exit = await cleanExit(slots[slot]!, `restart ${restart}`)
      naked += Number(section(reportFromOutput(exit.output), "nats messages").naked)
      for (const step of ["messages: last pull request", "messages: close"]) {
        assert.strictEqual(stepNamed(reportFromOutput(exit.output), step).outcome, "ok", exit.output)
      }
      slots[slot] = spawnFixture("nats_consumer.ts", env, { killAfterMs: 120_000 })
      all.push(slots[slot]!)
    }
    const { done, ids } = await finish(producer, slots, all)
    assertExactlyOnce(ids, done)
    console.log(`${ids.length} messages, 6 SIGTERM restarts, ${naked} nak'ed back: each processed once`)
  }, 120_000)

  it("SIGKILL restarts under a steady stream: none lost (the server redelivers after ack_wait)", async () => {
    const { env, publish } = await setup()
    const slots = [await consumer(env), await consumer(env)]
    const all = [...slots]
    const producer = produce(publish, 100, () => 20 + Math.floor(Math.random() * 600))
    await killInTurn(slots, all, () => spawnFixture("nats_consumer.ts", env, { killAfterMs: 120_000 }))
    const { done, ids } = await finish(producer, slots, all)
    const { redelivered, twice } = assertNoneLost(ids, done, all)
    console.log(`${ids.length} messages, 3 SIGKILLs: none lost, ${redelivered} redelivered, ${twice} processed twice (allowed on SIGKILL)`)
  }, 120_000)

  it("an unreachable server at startup stops the program with one line naming it and its address", async () => {
    const port = await closedPort()
    const child = spawnFixture("nats_consumer.ts", { STREAM: "none", NATS_PORT: String(port) })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("ResourceUnavailable"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `NATS at 127.0.0.1:${port} is unreachable`)
    assert.notMatch(output, /^\s+at /m, "no stack frames")
    assert.notInclude(output, "ready")
  })

  it("a stream that does not exist stops the program with one line naming it", async () => {
    const stream = uniqueName("winddown_nats_missing")
    const child = spawnFixture("nats_consumer.ts", { STREAM: stream, NATS_PORT: String(addresses.nats.port) })
    const { code, output } = await child.exited
    assert.strictEqual(code, 1, output)
    const lines = output.split("\n").filter((l) => l.includes("NatsConsumeFailed"))
    assert.lengthOf(lines, 1, output)
    assert.include(lines[0], `cannot consume from ${stream}/workers at 127.0.0.1:${addresses.nats.port}: `)
    assert.notMatch(output, /^\s+at /m, "no stack frames")
  })

  it("the server goes away during the drain: the message in hand still finishes, the close step fails saying its ack may be lost, the process exits in its budget, and the server redelivers the message", async () => {
    const { env, publish, unfinished } = await setup()
    const { port, cut } = await proxy()
    const a = await consumer({ ...env, NATS_PORT: String(port) })
    const id = await publish({ ms: 1500 })
    await a.waitFor(`start ${id}`)
    a.signal("SIGTERM")
    await a.waitFor("\"messages: stop pulling\" done")
    cut()
    const exit = await cleanExit(a, "consumer A")
    const report = reportFromOutput(exit.output)
    assert.isBelow(report.durationMs, report.timeoutMs, exit.output)
    assert.include(exit.output, `done ${id}`)
    const step = stepNamed(report, "messages: close")
    assert.strictEqual(step.outcome, "failed", exit.output)
    assert.include(step.detail, `the connection to NATS at 127.0.0.1:${port} is lost`, exit.output)
    // Its ack never reached the server: JetStream redelivers it after ack_wait (at least once).
    await eventually("the message back", async () => (await unfinished()) === 1, 10_000)
  }, 60_000)
})
