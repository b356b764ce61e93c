/**
 * What the real-broker tests (BullMQ, RabbitMQ, NATS) share: a steady
 * producer, the mix of message durations, counting completions from the
 * consumers' output, and waiting for a clean exit.
 */
import { assert } from "@effect/vitest"
import { setTimeout as sleep } from "node:timers/promises"
import type { ChildProcess } from "../../src/testing/index.ts"
import { eventually } from "./children.ts"

/** Wait for a child that got its SIGTERM: exit 0 (and, with `forbid`, none of those words in its output). */
export const cleanExit = async (child: ChildProcess.Child, label: string, forbid: ReadonlyArray<string> = []) => {
  const exit = await child.exited
  assert.strictEqual(exit.code, 0, `${label}:\n${exit.output}`)
  for (const word of forbid) assert.notInclude(exit.output, word, `${label}:\n${exit.output}`)
  return exit
}

/** Every `done <id> <n>` line of these consumers, counted by message id. */
export const completions = (children: ReadonlyArray<ChildProcess.Child>) => {
  const counts = new Map<string, number>()
  for (const child of children) {
    for (const [, id] of child.output().matchAll(/^done (\S+) \d+$/gm)) counts.set(id!, (counts.get(id!) ?? 0) + 1)
  }
  return counts
}

/**
 * Send a message every `everyMs` (`send` resolves with its id once confirmed)
 * until stopped; `stop` resolves with the ids, or rejects with the send that
 * failed. A failed send only stops the loop: when a test fails before `stop`,
 * its cleanup closes the connection under a send, and that must not surface
 * as an unhandled rejection blamed on the next test.
 */
export const produce = (send: (body: { readonly ms: number }) => Promise<string>, everyMs: number, ms: () => number) => {
  const ids: Array<string> = []
  let running = true
  const done = (async () => {
    while (running) {
      ids.push(await send({ ms: ms() }))
      await sleep(everyMs)
    }
    return ids
  })()
  // Handled here so that a failure nobody stops for is not unhandled; `stop` still rejects with it.
  done.catch(() => {})
  return { ids, stop: () => ((running = false), done) }
}

/** Mostly short messages, some longer than the drain: those are checkpointed and handed back. */
export const mixedDuration = () =>
  Math.random() < 0.15 ? 1500 + Math.floor(Math.random() * 2000) : 20 + Math.floor(Math.random() * 380)

/** Messages a consumer started (`start <id>`) and has not finished (`done <id>`), from its output. */
export const inHand = (child: ChildProcess.Child) => {
  const output = child.output()
  const started = new Set([...output.matchAll(/^start (\S+)/gm)].map((m) => m[1]))
  for (const [, id] of output.matchAll(/^done (\S+)/gm)) started.delete(id)
  return started.size
}

/**
 * SIGKILL the two consumers in `slots` in turn, `kills` times, each at a
 * random moment while it has messages in hand (so that the server has
 * something to redeliver), replacing each with `respawn()`. Every consumer
 * started is pushed to `all`.
 */
export const killInTurn = async (
  slots: Array<ChildProcess.Child>,
  all: Array<ChildProcess.Child>,
  respawn: () => ChildProcess.Child,
  kills = 3
) => {
  for (let kill = 0; kill < kills; kill++) {
    const slot = kill % 2
    await slots[slot]!.waitFor(/^ready \d+/, 30_000)
    await sleep(300 + Math.floor(Math.random() * 1200))
    await eventually("messages in hand", () => inHand(slots[slot]!) > 0, 10_000, 10)
    slots[slot]!.signal("SIGKILL")
    await slots[slot]!.exited
    slots[slot] = respawn()
    all.push(slots[slot]!)
  }
}

/**
 * Stop the producer, wait until every message it sent was processed, then
 * stop the consumers still running with a SIGTERM and check they exit 0.
 * Resolves with the ids sent and the completions by id.
 */
export const finish = async (
  producer: ReturnType<typeof produce>,
  slots: ReadonlyArray<ChildProcess.Child>,
  all: ReadonlyArray<ChildProcess.Child>
) => {
  const ids = await producer.stop()
  await eventually(`all ${ids.length} messages done`, () => completions(all).size >= ids.length, 60_000, 200)
  await Promise.all(
    slots.map((s, i) => s.waitFor(/^ready \d+/, 30_000).then(() => (s.signal("SIGTERM"), cleanExit(s, `final ${i}`))))
  )
  return { ids, done: completions(all) }
}

/** Every id processed exactly once. */
export const assertExactlyOnce = (ids: ReadonlyArray<string>, done: ReadonlyMap<string, number>) => {
  assert.deepStrictEqual([...done].filter(([, n]) => n !== 1), [], `messages processed more than once (of ${ids.length})`)
  assert.deepStrictEqual(ids.filter((id) => !done.has(id)), [], "messages never processed")
}

/** After SIGKILLs: no id lost, and the kills did hit messages in hand (some were redelivered). Returns the counts. */
export const assertNoneLost = (
  ids: ReadonlyArray<string>,
  done: ReadonlyMap<string, number>,
  all: ReadonlyArray<ChildProcess.Child>
) => {
  assert.deepStrictEqual(ids.filter((id) => !done.has(id)), [], "messages lost")
  const redelivered = all.reduce((n, c) => n + (c.output().match(/^start \S+ redelivered$/gm)?.length ?? 0), 0)
  assert.isAbove(redelivered, 0, "nothing was redelivered: the kills missed every message")
  return { redelivered, twice: [...done.values()].filter((n) => n > 1).length }
}

/** A bad option of an adapter: a ShutdownConfigError whose message is one line naming it. */
export const assertConfigRefusal = (error: { readonly _tag: string; readonly message: string }, names: string) => {
  assert.strictEqual(error._tag, "ShutdownConfigError")
  assert.include(error.message, names)
  assert.notInclude(error.message, "\n")
}
