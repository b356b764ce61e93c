// The published test helper never leaves a process behind.
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { ChildProcess } from "../src/testing/index.ts"
import { isAlive } from "./support/children.ts"

const waitGone = async (pid: number, ms: number) => {
  const end = performance.now() + ms
  while (isAlive(pid) && performance.now() < end) await sleep(100)
  return !isAlive(pid)
}

describe("ChildProcess", () => {
  it("killAll kills what is still running and says how many", async () => {
    const child = ChildProcess.spawn(path.join(import.meta.dirname, "fixtures", "sigterm.ts"))
    await child.waitFor("ready")
    assert.isAtLeast(ChildProcess.killAll(), 1)
    const exit = await child.exited
    assert.strictEqual(exit.signal, "SIGKILL")
  })

  it("a child whose test process dies without cleaning up kills itself", async () => {
    // A test process of its own, started by this test, that spawns a fixture
    // and is then SIGKILLed: no handler of it runs.
    const script = [
      `import { ChildProcess } from ${JSON.stringify(path.join(import.meta.dirname, "..", "src", "testing", "index.ts"))}`,
      `const child = ChildProcess.spawn(${JSON.stringify(path.join(import.meta.dirname, "fixtures", "sigterm.ts"))})`,
      `await child.waitFor("ready")`,
      `console.log("child " + child.pid)`,
      `setInterval(() => {}, 1000)`
    ].join("\n")
    const parent = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    try {
      const pid = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no child pid")), 60_000)
        parent.stdout!.on("data", (chunk: Buffer) => {
          const match = /child (\d+)/.exec(chunk.toString())
          if (match) {
            clearTimeout(timer)
            resolve(Number(match[1]))
          }
        })
      })
      assert.isTrue(isAlive(pid))
      parent.kill("SIGKILL")
      assert.isTrue(await waitGone(pid, 20_000), `child ${pid} outlived its test process`)
    } finally {
      parent.kill("SIGKILL")
    }
  })
})
