/**
 * Child processes for integration tests: started from test/fixtures, tracked,
 * and SIGKILLed after each test (and at exit) if still running, so no test
 * leaves a process behind, however it ends.
 */
import * as path from "node:path"
import { afterAll, afterEach } from "vitest"
import { ChildProcess } from "../../src/testing/index.ts"

const fixtures = path.join(import.meta.dirname, "..", "fixtures")
const running = new Set<ChildProcess.Child>()

const killAll = () => {
  for (const child of running) {
    try {
      process.kill(child.pid, "SIGKILL")
    } catch {
      // already gone
    }
  }
  running.clear()
}
process.once("exit", killAll)

/** Whether a process with this pid exists (signal 0 checks without sending). */
export const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Register the hooks in the calling test file. */
export const trackChildren = () => {
  afterEach(killAll)
  afterAll(killAll)
}

export const spawnFixture = (
  file: string,
  env: Record<string, string> = {},
  options: { readonly killAfterMs?: number; readonly dir?: string } = {}
): ChildProcess.Child => {
  const child = ChildProcess.spawn(path.join(options.dir ?? fixtures, file), {
    env,
    killAfterMs: options.killAfterMs ?? 90_000
  })
  running.add(child)
  void child.exited.then(() => running.delete(child))
  return child
}

/** Poll `check` every `everyMs` until it returns true; fail with `what` after `timeoutMs`. */
export const eventually = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000, everyMs = 50) => {
  const deadline = performance.now() + timeoutMs
  while (true) {
    if (await check()) return
    if (performance.now() > deadline) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
