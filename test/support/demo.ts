/**
 * Helpers for tests that run the demo service as a real process: start it on a
 * free port with its own data directory, talk to it, and make sure every
 * child a test started is gone when that test ends, also when it failed.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { ChildProcess } from "../../src/testing/index.ts"

export const root = path.join(import.meta.dirname, "..", "..")
export const demoMain = path.join(root, "demo", "main.ts")

export const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), `winddown-${prefix}-`))

export interface Running {
  readonly child: ChildProcess.Child
  readonly port: number
  readonly base: string
}

/**
 * At most this many demos load at once, across concurrent tests: loading
 * (tsx, effect) is what costs CPU, and on a loaded 2-core machine a dozen at
 * once would each take longer than a test wants to wait.
 */
const startSlots = { free: 2, waiting: [] as Array<() => void> }

/** Run `f` (which starts a process and resolves once it has loaded or exited) in a start slot. */
export const inStartSlot = async <A>(f: () => Promise<A>): Promise<A> => {
  if (startSlots.free > 0) startSlots.free--
  else await new Promise<void>((resolve) => startSlots.waiting.push(resolve))
  try {
    return await f()
  } finally {
    const next = startSlots.waiting.shift()
    if (next) next()
    else startSlots.free++
  }
}

/**
 * The children of one test: everything started through it is SIGKILLed when
 * the test ends, passed or failed. Pass the test context's `onTestFinished`
 * (tests run concurrently, each with its own children).
 */
export const session = (onTestFinished: (f: () => Promise<void>) => void) => {
  const running = new Set<ChildProcess.Child>()
  const track = (child: ChildProcess.Child) => {
    running.add(child)
    void child.exited.then(() => running.delete(child))
    return child
  }
  onTestFinished(async () => {
    const left = [...running]
    for (const child of left) {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {
        // gone already
      }
    }
    await Promise.all(left.map((c) => c.exited))
  })
  /** `node --import tsx file` (a fixture), tracked. */
  const spawn = (file: string, options: ChildProcess.SpawnOptions = {}) =>
    track(ChildProcess.spawn(file, { killAfterMs: 90_000, ...options }))
  /** The demo with `env` (HOST=127.0.0.1 and a 5 s budget unless given), tracked. */
  const spawnDemo = (env: Readonly<Record<string, string>>, args: ReadonlyArray<string> = []) =>
    spawn(demoMain, { env: { HOST: "127.0.0.1", WINDDOWN_TIMEOUT: "5s", ...env }, args })
  /** Start the demo on a free port (`PORT=0` unless given) and wait until it listens. */
  const startDemo = (dataDir: string, env: Readonly<Record<string, string>> = {}): Promise<Running> =>
    inStartSlot(async () => {
      const child = spawnDemo({ PORT: "0", DATA_DIR: dataDir, WORKERS: "2", ...env })
      const port = await listeningPort(child)
      return { child, port, base: `http://127.0.0.1:${port}` }
    })
  /** Run the demo with `env` until it exits (a refused start), in a start slot. */
  const runDemo = (env: Readonly<Record<string, string>>, args: ReadonlyArray<string> = []) =>
    inStartSlot(() => spawnDemo(env, args).exited)
  /**
   * The demo under a file size limit (`ulimit -f`): writes beyond `bytes` fail
   * with EFBIG, the way they fail with ENOSPC on a full disk.
   */
  const spawnDemoWithFileLimit = (bytes: number, env: Readonly<Record<string, string>>) =>
    // sh's ulimit -f counts 512-byte blocks.
    spawn(demoMain, {
      shellPrefix: `ulimit -f ${Math.ceil(bytes / 512)}`,
      env: { HOST: "127.0.0.1", WINDDOWN_TIMEOUT: "5s", ...env }
    })
  return { spawn, spawnDemo, startDemo, runDemo, spawnDemoWithFileLimit }
}

/** Waits for the port a started demo printed. */
export const listeningPort = async (child: ChildProcess.Child) =>
  Number(/localhost:(\d+)/.exec(await child.waitFor(/listening on http:\/\/localhost:\d+/, 60_000))![1])

/** Stop with SIGTERM and return how it ended. */
export const stopDemo = async (running: Running) => {
  running.child.signal("SIGTERM")
  return running.child.exited
}

/** Occupy a port until `close` is called. */
export const holdPort = (): Promise<{ readonly port: number; readonly close: () => Promise<void> }> =>
  new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy())
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      resolve({ port, close: () => new Promise((done) => server.close(() => done())) })
    })
  })

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

/** One request on a fresh connection; `body` is sent as is. */
export const request = (
  port: number,
  options: {
    readonly method?: string
    readonly path: string
    readonly body?: string | Buffer
    readonly headers?: Readonly<Record<string, string>>
  }
): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: options.method ?? "GET", path: options.path, headers: options.headers, agent: false },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        })
        res.on("error", reject)
      }
    )
    req.on("error", reject)
    req.end(options.body)
  })

export const postJob = (port: number, ms: number) =>
  request(port, { method: "POST", path: "/jobs", body: JSON.stringify({ ms }), headers: { "content-type": "application/json" } })

/** Post jobs until `stop` resolves; the ids that were acknowledged (202). */
export const submitUntil = async (port: number, stop: Promise<unknown>, maxMs = 600) => {
  const acked: Array<string> = []
  let stopped = false
  void stop.then(() => (stopped = true))
  for (let i = 0; i < 400 && !stopped; i++) {
    try {
      const answer = await postJob(port, 20 + Math.floor(Math.random() * maxMs))
      if (answer.status === 202) acked.push(answer.json.id)
    } catch {
      // refused or reset while stopping: not acknowledged, so not promised
    }
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 25))
  }
  return acked
}

/** The output's lines, without blank ones. */
export const lines = (output: string) => output.split("\n").filter((l) => l.trim() !== "")
