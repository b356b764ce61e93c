/**
 * The rolling bench's client: a closed loop of keep-alive connections through
 * the load balancer, plus job submissions and their checks, counting every
 * request's outcome.
 *
 * Outcomes: `ok` (the expected status and a whole body), `reset` (the
 * connection was reset or closed before any response: ECONNRESET, EPIPE,
 * "socket hang up"), `5xx`, `timeout` (no complete answer within the client
 * timeout), `cut` (a response began and did not complete), `refused`
 * (ECONNREFUSED: the load balancer itself was not there), `other` (4xx, a
 * body that is not what the API promises, any other error).
 */
import * as http from "node:http"

export type Kind = "ok" | "reset" | "5xx" | "timeout" | "cut" | "refused" | "other"
export const failureKinds: ReadonlyArray<Exclude<Kind, "ok">> = ["reset", "5xx", "timeout", "cut", "refused", "other"]

export interface Outcome {
  readonly kind: Kind
  /** When it was sent, ms since the run's origin. */
  readonly at: number
  readonly latencyMs: number
  readonly status?: number | undefined
  readonly body?: unknown
  readonly detail?: string | undefined
}

export interface Target {
  readonly host: string
  readonly port: number
  readonly agent: http.Agent
  readonly timeoutMs: number
  /** performance.now() of the run's origin. */
  readonly origin: number
}

const isReset = (e: NodeJS.ErrnoException) =>
  e.code === "ECONNRESET" || e.code === "EPIPE" || /socket hang up/.test(e.message)

/** One request; never rejects. `expect` is the status that counts as ok. */
export const request = (
  target: Target,
  method: "GET" | "POST",
  path: string,
  expect: number,
  body?: unknown
): Promise<Outcome> =>
  new Promise((resolve) => {
    const t0 = performance.now()
    const at = t0 - target.origin
    let settled = false
    let responded = false
    const done = (kind: Kind, extra: Partial<Outcome> = {}) => {
      if (settled) return
      settled = true
      resolve({ kind, at, latencyMs: performance.now() - t0, ...extra })
    }
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = http.request(
      {
        host: target.host,
        port: target.port,
        method,
        path,
        agent: target.agent,
        headers: payload === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
      },
      (res) => {
        responded = true
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.once("error", (e) => done("cut", { status: res.statusCode, detail: e.message }))
        res.once("aborted", () => done("cut", { status: res.statusCode, detail: "aborted" }))
        res.once("end", () => {
          const status = res.statusCode ?? 0
          if (!res.complete) return done("cut", { status, detail: "incomplete" })
          if (status >= 500) return done("5xx", { status })
          let parsed: unknown
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"))
          } catch {
            return done("other", { status, detail: "body is not JSON" })
          }
          if (status !== expect) return done("other", { status, body: parsed, detail: `status ${status}` })
          done("ok", { status, body: parsed })
        })
      }
    )
    // The whole exchange, not just socket inactivity, must end within the timeout.
    const timer = setTimeout(() => {
      done("timeout")
      req.destroy(new Error("client timeout"))
    }, target.timeoutMs)
    req.once("close", () => clearTimeout(timer))
    req.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (responded) return done("cut", { detail: e.code ?? e.message })
      if (e.code === "ECONNREFUSED") return done("refused", { detail: e.code })
      done(isReset(e) ? "reset" : "other", { detail: e.code ?? e.message })
    })
    req.end(payload)
  })

/** Everything recorded about the requests of a run (the final job verification is not included). */
export class Recorder {
  readonly at: Array<number> = []
  readonly latency: Array<number> = []
  readonly kind: Array<Kind> = []
  readonly samples: Partial<Record<Kind, Array<string>>> = {}
  /** The slowest requests: route, when, how long, how it ended. */
  readonly slowest: Array<{ readonly route: string; readonly at: number; readonly latencyMs: number; readonly kind: Kind }> = []
  add(route: string, o: Outcome) {
    this.at.push(o.at)
    this.latency.push(o.latencyMs)
    this.kind.push(o.kind)
    if (this.slowest.length < 10 || o.latencyMs > this.slowest[this.slowest.length - 1]!.latencyMs) {
      this.slowest.push({ route, at: Math.round(o.at), latencyMs: Math.round(o.latencyMs), kind: o.kind })
      this.slowest.sort((a, b) => b.latencyMs - a.latencyMs)
      if (this.slowest.length > 10) this.slowest.pop()
    }
    if (o.kind !== "ok") {
      const list = (this.samples[o.kind] ??= [])
      if (list.length < 5) list.push(`${route} at ${(o.at / 1000).toFixed(2)} s: ${o.detail ?? o.status ?? ""}`)
    }
  }
  get count() {
    return this.at.length
  }
}

export interface LoadOptions {
  /** Concurrent keep-alive connections running the closed loop of `GET /work`. */
  readonly connections: number
  /** A job is submitted this often. */
  readonly jobEveryMs: number
  /** Random source, seeded by the caller so runs are comparable. */
  readonly random: () => number
}

/**
 * `GET /work?ms=` durations: most answer at once, 13 % take 1-50 ms, and 2 %
 * take 200-1000 ms, so that every stopping replica has requests in flight.
 */
export const workMs = (random: () => number) => {
  const r = random()
  if (r < 0.85) return 0
  if (r < 0.98) return 1 + Math.floor(random() * 50)
  return 200 + Math.floor(random() * 800)
}

/** Job durations: mostly 0.1-2 s; one in ten 4-8 s, longer than a stopping replica's soft deadline. */
export const jobMs = (random: () => number) =>
  random() < 0.9 ? 100 + Math.floor(random() * 1_900) : 4_000 + Math.floor(random() * 4_000)

export interface Job {
  readonly id: string
  readonly ms: number
  readonly acceptedAt: number
  /** From the latest `GET /jobs/:id`. */
  status?: string
  completions?: number
  runs?: number
  doneSeenAt?: number
  nextCheckAt: number
}

/** The job as `GET /jobs/:id` shows it; `state` is the demo's name for `status`. */
export const readJob = (body: unknown) => {
  const b = body as { status?: unknown; state?: unknown; completions?: unknown; runs?: unknown } | undefined
  const status = typeof b?.status === "string" ? b.status : typeof b?.state === "string" ? b.state : undefined
  return {
    status,
    completions: typeof b?.completions === "number" ? b.completions : undefined,
    runs: typeof b?.runs === "number" ? b.runs : undefined
  }
}

/**
 * Run the load until `stop` resolves: `connections` loops of `GET /work`, one
 * loop submitting jobs, one loop checking submitted jobs once they should be
 * done (again every second until it sees them done). Returns when every loop
 * has finished its last request.
 */
export const run = async (
  target: Target,
  options: LoadOptions,
  recorder: Recorder,
  jobs: Map<string, Job>,
  stop: Promise<void>
): Promise<{ readonly submitted: number }> => {
  let stopping = false
  void stop.then(() => (stopping = true))
  const now = () => performance.now() - target.origin
  const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))
  let submitted = 0

  const worker = async () => {
    while (!stopping) {
      const ms = workMs(options.random)
      const o = await request(target, "GET", `/work?ms=${ms}`, 200)
      recorder.add("GET /work", o)
      if (o.kind === "ok" && (o.body as { worked?: unknown } | undefined)?.worked !== ms) {
        // A wrong answer is a failure too (recorded as `other` in place of the ok).
        recorder.kind[recorder.kind.length - 1] = "other"
      }
      // Back off after a failure so an outage is not a busy loop.
      if (o.kind !== "ok") await pause(10)
    }
  }

  const submitter = async () => {
    let next = now()
    while (!stopping) {
      next += options.jobEveryMs
      const ms = jobMs(options.random)
      submitted++
      const o = await request(target, "POST", "/jobs", 202, { ms })
      recorder.add("POST /jobs", o)
      const id = (o.body as { id?: unknown } | undefined)?.id
      if (o.kind === "ok" && typeof id === "string") {
        jobs.set(id, { id, ms, acceptedAt: o.at + o.latencyMs, nextCheckAt: o.at + o.latencyMs + ms + 500 })
      } else if (o.kind === "ok") {
        recorder.kind[recorder.kind.length - 1] = "other"
      }
      const wait = next - now()
      if (wait > 0) await pause(wait)
    }
  }

  const checker = async () => {
    while (!stopping) {
      const due = [...jobs.values()].filter((j) => j.doneSeenAt === undefined && j.nextCheckAt <= now()).slice(0, 8)
      for (const job of due) {
        if (stopping) break
        const o = await request(target, "GET", `/jobs/${encodeURIComponent(job.id)}`, 200)
        recorder.add("GET /jobs/:id", o)
        job.nextCheckAt = now() + 1_000
        if (o.kind !== "ok") continue
        const seen = readJob(o.body)
        Object.assign(job, seen)
        if (seen.status === "done") job.doneSeenAt = now()
      }
      await pause(100)
    }
  }

  await Promise.all([...Array.from({ length: options.connections }, worker), submitter(), checker()])
  return { submitted }
}

/**
 * After the load: read every accepted job until it is done or `timeoutMs`
 * passed, then read each once more for its final completion count. These
 * requests are verification, not load: failures are retried, not counted.
 */
export const verifyJobs = async (target: Target, jobs: Map<string, Job>, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  const read = async (job: Job) => {
    const o = await request(target, "GET", `/jobs/${encodeURIComponent(job.id)}`, 200)
    if (o.kind === "ok") Object.assign(job, readJob(o.body))
    else if (o.kind === "other" && o.status === 404) job.status = "missing"
    return o.kind === "ok" || o.status === 404
  }
  const inBatches = async (list: ReadonlyArray<Job>, f: (j: Job) => Promise<unknown>) => {
    for (let i = 0; i < list.length; i += 16) await Promise.all(list.slice(i, i + 16).map(f))
  }
  while (performance.now() < deadline) {
    const open = [...jobs.values()].filter((j) => j.status !== "done")
    if (open.length === 0) break
    await inBatches(open, read)
    if ([...jobs.values()].every((j) => j.status === "done")) break
    await new Promise((r) => setTimeout(r, 500))
  }
  // The final count of completions of every job, read after the last one was done.
  await inBatches([...jobs.values()], async (job) => {
    for (let i = 0; i < 5 && !(await read(job)); i++) await new Promise((r) => setTimeout(r, 200))
  })
}

/** A small seeded generator (mulberry32), so every contender gets the same sequence. */
export const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
}
