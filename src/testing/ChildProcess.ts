/**
 * Run a TypeScript program in a real child process, the way a service runs
 * in production, so signal handling is tested for real: wait for a line,
 * send a signal, and read the exit code, the output and the time it took.
 *
 * The child runs as `node --import tsx file.ts` (not `npx tsx`, whose wrapper
 * would take the signal and leave the child running).
 *
 * @since 0.1.0
 */
import { spawn as spawnProcess } from "node:child_process"
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
  /** Resolves with the first output line matching `pattern`; rejects after `timeoutMs` or if the child exits first. */
  readonly waitFor: (pattern: RegExp | string, timeoutMs?: number) => Promise<string>
  /** Send a signal; the first one starts the `elapsedMs` clock. */
  readonly signal: (signal: NodeJS.Signals) => void
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
  /** Kill the child with SIGKILL if it has not exited after this long. Default 60 s. */
  readonly killAfterMs?: number
}

/**
 * Start `file` with `node --import tsx`.
 *
 * @since 0.1.0
 * @category testing
 */
export const spawn = (file: string, options: SpawnOptions = {}): Child => {
  const started = performance.now()
  let firstSignalAt: number | undefined
  let output = ""
  let exitedValue: Exited | undefined
  const listeners = new Set<() => void>()
  const child = spawnProcess(process.execPath, ["--import", "tsx", file, ...(options.args ?? [])], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const append = (chunk: Buffer) => {
    output += chunk.toString("utf8")
    for (const listener of listeners) listener()
  }
  child.stdout!.on("data", append)
  child.stderr!.on("data", append)
  const guard = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs ?? 60_000)
  const exited = new Promise<Exited>((resolve) => {
    child.on("close", (code, signal) => {
      clearTimeout(guard)
      exitedValue = { code, signal, output, elapsedMs: performance.now() - (firstSignalAt ?? started) }
      for (const listener of listeners) listener()
      resolve(exitedValue)
    })
  })
  const waitFor = (pattern: RegExp | string, timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const matches = (line: string) => typeof pattern === "string" ? line.includes(pattern) : pattern.test(line)
      const check = () => {
        const line = output.split("\n").find(matches)
        if (line !== undefined) return done(() => resolve(line))
        if (exitedValue !== undefined) {
          return done(() => reject(new Error(`child exited (${exitedValue!.code ?? exitedValue!.signal}) before printing ${pattern}:\n${output}`)))
        }
      }
      const timer = setTimeout(() => done(() => reject(new Error(`no line matching ${pattern} after ${timeoutMs} ms:\n${output}`))), timeoutMs)
      const done = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        f()
      }
      listeners.add(check)
      check()
    })
  return {
    pid: child.pid!,
    output: () => output,
    waitFor,
    signal: (signal) => {
      firstSignalAt ??= performance.now()
      child.kill(signal)
    },
    exited
  }
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
    (child) => Effect.sync(() => {
      try {
        process.kill(child.pid, "SIGKILL")
      } catch {
        // already gone
      }
    })
  )
