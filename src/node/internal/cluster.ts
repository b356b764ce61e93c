/**
 * The one place winddown touches `node:cluster` and the process's IPC
 * channel, as `process.ts` is the one place for signals, watchdog and exit
 * codes of a single process. NodeCluster (the primary) and NodeShutdown (any
 * process with a parent that talks to it) go through here and nowhere else.
 *
 * The protocol between a parent and a child is PM2's, extended:
 *
 * - child to parent: the string `"ready"` once the program says it is ready
 *   (PM2's `wait_ready`; a NodeCluster primary waits for the same string);
 * - parent to child: the string `"shutdown"` (PM2's `shutdown_with_message`,
 *   and what PM2 sends on Windows) starts the shutdown like SIGTERM;
 *   `{ winddown: "stop", signal }` starts it naming the signal the primary
 *   got, and `{ winddown: "force", signal }` escalates it like a second signal.
 *
 * A NodeCluster primary stops its workers with these messages rather than with
 * signals: a terminal's Ctrl+C reaches every process of the group, workers
 * included, and a signal forwarded on top would count as a second one and
 * escalate. A message starts the shutdown without being counted.
 *
 * Nothing here throws: a message to a process that is gone is dropped.
 */
import cluster, { type Worker } from "node:cluster"

// ---------------------------------------------------------------------------
// Environment a primary hands to its workers.
// ---------------------------------------------------------------------------

/** Set by a NodeCluster primary in its workers' environment. */
export const env = {
  /** The primary's budget in ms: a worker whose own budget is not below it gets a warning. */
  timeout: "WINDDOWN_CLUSTER_TIMEOUT_MS",
  /** The primary's reload signal: workers ignore it (a terminal hangup reaches the whole group). */
  reloadSignal: "WINDDOWN_CLUSTER_RELOAD_SIGNAL"
} as const

/** The primary's budget, when this process is a NodeCluster worker. */
export const primaryTimeoutMs = (): number | undefined => {
  const value = Number(process.env[env.timeout])
  return process.env[env.timeout] !== undefined && Number.isFinite(value) && value > 0 ? value : undefined
}

// ---------------------------------------------------------------------------
// The child side: any process with an IPC channel to its parent.
// ---------------------------------------------------------------------------

/** What a parent asked for. */
export type Request =
  | { readonly _tag: "stop"; readonly signal: string; readonly from: "pm2" | "primary" }
  | { readonly _tag: "force"; readonly signal: string }

const signalName = (u: unknown): string => (typeof u === "string" && /^SIG[A-Z0-9]+$/.test(u) ? u : "SIGTERM")

/** Read a message from the parent; anything else is not for winddown. */
export const parseRequest = (message: unknown): Request | undefined => {
  if (message === "shutdown") return { _tag: "stop", signal: "SIGTERM", from: "pm2" }
  if (typeof message !== "object" || message === null) return undefined
  const m = message as { readonly winddown?: unknown; readonly signal?: unknown }
  if (m.winddown === "stop") return { _tag: "stop", signal: signalName(m.signal), from: "primary" }
  if (m.winddown === "force") return { _tag: "force", signal: signalName(m.signal) }
  return undefined
}

const hasChannel = (): boolean => typeof process.send === "function" && process.connected

/** Tell the parent (PM2, a NodeCluster primary) that this process is ready. False without a parent to tell. */
export const sendReady = (): boolean => {
  if (!hasChannel()) return false
  try {
    process.send!("ready", undefined, {}, () => {})
    return true
  } catch {
    return false
  }
}

/** True in a worker of a winddown primary (not of PM2's or another primary). */
export const isWinddownWorker = (): boolean => cluster.isWorker && process.env[env.timeout] !== undefined

let nextSync = 0

/**
 * Resolves once the primary has stopped handing connections to this worker.
 *
 * node:cluster's primary accepts connections and passes each to a worker in
 * a message; a worker whose listener is closed answers "not accepted" and the
 * primary passes the connection to another. But a worker that exits with such
 * a message still unread in its channel never answers, and that connection
 * hangs until the client gives up. The channel is ordered both ways: the
 * listener's close reaches the primary before this request, so its answer
 * comes after every connection it handed over before it knew, each of which
 * this worker has answered by then.
 */
export const handoffBarrier = (): Promise<void> =>
  new Promise((resolve) => {
    if (!hasChannel()) return resolve()
    const id = ++nextSync
    const done = () => {
      process.off("message", onMessage)
      process.off("disconnect", done)
      resolve()
    }
    const onMessage = (message: unknown) => {
      const m = message as { readonly winddown?: unknown; readonly id?: unknown } | null
      if (typeof m === "object" && m !== null && m.winddown === "synced" && m.id === id) done()
    }
    process.on("message", onMessage)
    process.once("disconnect", done)
    try {
      process.send!({ winddown: "sync", id }, undefined, {}, (error: Error | null) => {
        if (error) done()
      })
    } catch {
      done()
    }
  })

/** What {@link listen} returns. */
export interface Listening {
  /** Stop listening, and let the channel no longer hold the process, so it exits by itself once its work is done. */
  readonly dispose: () => void
}

/**
 * Listen to the parent for stop and force requests. Undefined when the
 * process has no IPC channel. A NodeCluster worker also ignores the primary's
 * reload signal, which a terminal hangup delivers to the whole group.
 */
export const listen = (onRequest: (request: Request) => void): Listening | undefined => {
  if (!hasChannel()) return undefined
  const onMessage = (message: unknown) => {
    const request = parseRequest(message)
    if (request !== undefined) onRequest(request)
  }
  process.on("message", onMessage)
  const reload = process.env[env.reloadSignal] as NodeJS.Signals | undefined
  const ignore = () => {}
  if (cluster.isWorker && reload !== undefined && /^SIG[A-Z0-9]+$/.test(reload)) process.on(reload, ignore)
  return {
    dispose: () => {
      process.off("message", onMessage)
      if (cluster.isWorker && reload !== undefined) process.off(reload, ignore)
      // A cluster worker's channel is held by node:cluster itself: without
      // this, a worker whose program ended would never exit. Any other
      // child's channel is held only while it has listeners, and is left
      // alone (a test runner's worker, say, still needs its own).
      if (cluster.isWorker) process.channel?.unref()
    }
  }
}

// ---------------------------------------------------------------------------
// The primary side.
// ---------------------------------------------------------------------------

/** True in the process that started the others (or runs alone); false in a node:cluster worker, PM2's included. */
export const isPrimary = (): boolean => cluster.isPrimary

/** One forked worker, as the primary sees it. */
export interface Forked {
  readonly id: number
  readonly pid: number
  /** Send a request; false when the worker is gone. */
  readonly request: (request: { readonly _tag: "stop" | "force"; readonly signal: string }) => boolean
  /** SIGKILL (or another signal); false when the worker is gone. */
  readonly kill: (signal?: NodeJS.Signals) => boolean
  readonly isAlive: () => boolean
}

/** What the primary hears from one worker. */
export interface WorkerEvents {
  readonly ready: () => void
  readonly exit: (code: number | null, signal: NodeJS.Signals | null) => void
}

const live = new Set<Worker>()
let killOnExitInstalled = false

/**
 * Nothing outlives the primary: whatever ends it (its watchdog, a third
 * signal, a crash), every worker still running is SIGKILLed on its way out.
 */
const killOnExit = () => {
  if (killOnExitInstalled) return
  killOnExitInstalled = true
  process.on("exit", () => {
    for (const worker of live) {
      try {
        worker.process.kill("SIGKILL")
      } catch {
        // gone already
      }
    }
  })
}

/**
 * Fork a worker: the same entry file and Node flags as the primary (what
 * `node:cluster` does by default), with `env` added.
 */
export const fork = (workerEnv: Readonly<Record<string, string>>, events: WorkerEvents): Forked => {
  killOnExit()
  const worker = cluster.fork(workerEnv)
  live.add(worker)
  let exited = false
  worker.on("message", (message: unknown) => {
    if (message === "ready") return events.ready()
    const m = message as { readonly winddown?: unknown; readonly id?: unknown } | null
    // See handoffBarrier: by now the worker's close was processed, no more connections go to it.
    if (typeof m === "object" && m !== null && m.winddown === "sync") {
      try {
        worker.send({ winddown: "synced", id: m.id }, undefined, () => {})
      } catch {
        // the worker is gone
      }
    }
  })
  // A send to a worker that is exiting fails asynchronously: not a crash of the primary.
  worker.on("error", () => {})
  worker.once("exit", (code, signal) => {
    exited = true
    live.delete(worker)
    events.exit(code, signal as NodeJS.Signals | null)
  })
  const pid = worker.process.pid ?? -1
  return {
    id: worker.id,
    pid,
    request: (request) => {
      if (exited || !worker.isConnected()) return false
      try {
        worker.send({ winddown: request._tag, signal: request.signal }, undefined, () => {})
        return true
      } catch {
        return false
      }
    },
    kill: (signal = "SIGKILL") => {
      if (exited) return false
      try {
        return worker.process.kill(signal)
      } catch {
        return false
      }
    },
    isAlive: () => !exited
  }
}

/** Listen for a signal in the primary (the reload signal); returns the way to stop listening. */
export const onSignal = (signal: NodeJS.Signals, f: () => void): () => void => {
  const listener = () => f()
  process.on(signal, listener)
  return () => void process.off(signal, listener)
}

/** The primary's pid, for the lines telling how to reload and stop it. */
export const pid = (): number => process.pid
