/**
 * What the real-broker tests (BullMQ, RabbitMQ, NATS) share: a steady
 * producer, the mix of message durations, counting completions from the
 * consumers' output, and waiting for a clean exit.
 */
import { assert } from "@effect/vitest"
import { setTimeout as sleep } from "node:timers/promises"
import type { ChildProcess } from "../../src/testing/index.ts"

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

/** Send a message every `everyMs` (`send` resolves with its id once confirmed) until stopped; resolves with the ids. */
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
  return { ids, stop: () => ((running = false), done) }
}

/** Mostly short messages, some longer than the drain: those are checkpointed and handed back. */
export const mixedDuration = () =>
  Math.random() < 0.15 ? 1500 + Math.floor(Math.random() * 2000) : 20 + Math.floor(Math.random() * 380)
