/**
 * Run a TypeScript program in a real child process, the way a service runs
 * in production, so signal handling is tested for real: wait for a line,
 * send a signal, and read the exit code, the output and the time it took.
 *
 * The child runs as `node --import tsx file.ts` (not `npx tsx`, whose wrapper
 * would take the signal and leave the child running).
 *
 * No child outlives its test run: each is killed when its `killAfterMs`
 * guard fires, when {@link killAll} runs (call it in `afterEach`), when the
 * scope of {@link spawnScoped} closes, when the test process exits, and, if
 * the test process dies without running any handler (SIGKILL, a crashed
 * worker), by the child itself: it watches a pipe to its parent and kills
 * itself when the pipe closes.
 *
 * @since 0.1.0
 */
import { spawn as spawnProcess } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"

/**
 * How a child ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface Exited {
  /** Exit code, or null when a signal killed it. */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** stdout and stderr interleaved in arrival order. */
  readonly output: string
  /** Milliseconds from the first signal sent (or from the spawn, if none) to the exit. */
  readonly elapsedMs: number
}

/**
 * A running child.
 *
 * @since 0.1.0
 * @category models
 */
export interface Child {
  readonly pid: number
  /** Everything printed so far. */
  readonly output: () => string
  /** Resolves with the first output line matching `pattern`; rejects after `timeoutMs` (default 60 s) or if the child exits first. */
  readonly waitFor: (pattern: RegExp | string, timeoutMs?: number) => Promise<string>
  /** Send a signal; the first one starts the `elapsedMs` clock. */
  readonly signal: (signal: NodeJS.Signals) => void
  /** SIGKILL it if it is still running. */
  readonly kill: () => void
  /** Resolves when the child has exited. */
  readonly exited: Promise<Exited>
}

/**
 * Options of {@link spawn}.
 *
 * @since 0.1.0
 * @category models
 */
export interface SpawnOptions {
  readonly args?: ReadonlyArray<string>
  /** Added to the parent's environment. */
  readonly env?: Readonly<Record<string, string>>
  readonly cwd?: string
  /** Kill the child with SIGKILL if it has not exited after this long. Default 120 s. */
  readonly killAfterMs?: number
  /** The program to run `file` with. Default: this process's `node`. */
  readonly execPath?: string
  /**
   * Shell commands to run first, in `sh -c "<shellPrefix> && exec node ..."`:
   * limits for the child, e.g. `ulimit -f 64` (writes past 32 KiB fail as on
   * a full disk). The child is still node itself (`exec`), so signals reach it.
   */
  readonly shellPrefix?: string
}

/** How long {@link Child.waitFor} waits by default: generous, for loaded machines. */
export const defaultWaitMs = 60_000

const running = new Set<Child>()
let exitHookInstalled = false

/** Kills itself when the pipe to its parent closes: the parent died without cleaning up. */
const orphanGuard = fileURLToPath(new URL("./orphanGuard.mjs", import.meta.url))

/**
 * SIGKILL every child started by {@link spawn} that is still running; returns
 * how many there were. Call it in `afterEach` so a failing test leaves nothing.
 *
 * @since 0.1.0
 * @category testing
 */
export const killAll = (): number => {
  const n = running.size
  for (const child of Array.from(running)) child.kill()
  return n
}

/**
 * Start `file` with `node --import tsx`.
 *
 * @since 0.1.0
 * @category testing
 */
export const spawn = (file: string, options: SpawnOptions = {}): Child => {
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on("exit", () => void killAll())
  }
  const started = performance.now()
  let firstSignalAt: number | undefined
  let output = ""
  let exitedValue: Exited | undefined
  const listeners = new Set<() => void>()
  const node = options.execPath ?? process.execPath
  const argv = ["--import", orphanGuard, "--import", "tsx", file, ...(options.args ?? [])]
  const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`
  const [command, args] = options.shellPrefix === undefined
    ? [node, argv]
    : ["sh", ["-c", `${options.shellPrefix} && exec ${[node, ...argv].map(quote).join(" ")}`]]
  const child = spawnProcess(command, args, {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...options.env },
    // stdin is the lifeline the orphan guard watches.
    stdio: ["pipe", "pipe", "pipe"]
  })
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8")
    for (const listener of listeners) listener()
  }
  child.stdout!.on("data", append)
  child.stderr!.on("data", append)
  child.stdin!.on("error", () => {})
  const kill = () => {
    if (exitedValue !== undefined) return
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
  const guard = setTimeout(kill, options.killAfterMs ?? 120_000)
  guard.unref()
  const exited = new Promise<Exited>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(guard)
      running.delete(self)
      exitedValue = { code, signal, output, elapsedMs: performance.now() - (firstSignalAt ?? started) }
      for (const listener of listeners) listener()
      resolve(exitedValue)
    })
  })
  const waitFor = (pattern: RegExp | string, timeoutMs = defaultWaitMs) =>
    new Promise<string>((resolve, reject) => {
      const matches = (line: string) => typeof pattern === "string" ? line.includes(pattern) : pattern.test(line)
      const check = () => {
        const line = output.split("\n").find(matches)
        if (line !== undefined) return done(() => resolve(line))
        if (exitedValue !== undefined) {
          return done(() =>
            reject(new Error(`child exited (${exitedValue!.code ?? exitedValue!.signal}) before printing ${pattern}:\n${output}`))
          )
        }
      }
      const timer = setTimeout(
        () => done(() => reject(new Error(`no line matching ${pattern} after ${timeoutMs} ms:\n${output}`))),
        timeoutMs
      )
      const done = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        f()
      }
      listeners.add(check)
      check()
    })
  const self: Child = {
    pid: child.pid!,
    output: () => output,
    waitFor,
    signal: (signal) => {
      firstSignalAt ??= performance.now()
      child.kill(signal)
    },
    kill,
    exited
  }
  running.add(self)
  return self
}

/**
 * {@link spawn} as a scoped Effect: the child is killed when the scope closes
 * if it is still running.
 *
 * @since 0.1.0
 * @category testing
 */
export const spawnScoped = (file: string, options: SpawnOptions = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => spawn(file, options)),
    (child) => Effect.sync(() => child.kill())
  )
