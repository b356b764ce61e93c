/**
 * What telemetry costs a shutdown: 1,000 steps and a drain of 10,000 fibers,
 * in one run, side by side:
 *
 * - `before`: winddown as it was before spans and metrics (a git revision,
 *   default 72bbef6, extracted into bench/out/ and imported from there);
 * - `no tracer`: winddown now, with effect's default tracer (metrics are
 *   always recorded);
 * - `memory tracer`: now, with an in-memory tracer: effect's own spans,
 *   counted (keeping them all would measure the collector, not the spans);
 * - `OTLP`: now, with effect's OTLP tracer, metrics and logger (JSON over
 *   HTTP) sending to a receiver in another process, including the flush
 *   phase's export.
 *
 * Each variant runs in a process of its own (warm-up, then a few samples of
 * both workloads); a round starts one process per variant in a shuffled
 * order, and many short rounds spread every variant over many moments of a
 * shared machine's load. Not several variants in one process: with the very
 * same code, a second copy of winddown in the process measured 2.4× slower
 * than the first, and tracer variants slowed the others down. The tables
 * give medians and ratios of CPU time (what the work costs; on a shared
 * machine it moves far less than wall-clock time, which is shown too). Logging is off, as in bench/core.ts (a log line per step would
 * dominate).
 *
 *   node --import tsx bench/telemetry.ts [--rounds 21] [--samples 7] [--before <rev>] [--only before,no tracer]
 */
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Exit, Latch, Layer, References, Scope, Tracer } from "effect"
import { FetchHttpClient } from "effect/http"
import { Otlp } from "effect/observability"
import * as Now from "../src/index.ts"

const args = process.argv.slice(2)
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback
}
const ROUNDS = Number(option("rounds", "21"))
const SAMPLES = Number(option("samples", "7"))
const BEFORE = option("before", "72bbef6")
const STEPS = 1000
const IN_FLIGHT = 10_000

// ---------------------------------------------------------------------------
// The implementations
// ---------------------------------------------------------------------------

type Winddown = Pick<typeof Now, "Shutdown" | "Drain">

const root = path.join(import.meta.dirname, "..")
const loadBefore = async (rev: string): Promise<Winddown> => {
  const sha = execFileSync("git", ["rev-parse", "--short", rev], { cwd: root, encoding: "utf8" }).trim()
  const dir = path.join(root, "bench", "out", `before-${sha}`)
  if (!fs.existsSync(path.join(dir, "src", "index.ts"))) {
    fs.mkdirSync(dir, { recursive: true })
    const tar = execFileSync("git", ["archive", sha, "src"], { cwd: root })
    execFileSync("tar", ["-x", "-C", dir], { input: tar })
  }
  return await import(path.join(dir, "src", "index.ts")) as Winddown
}

// ---------------------------------------------------------------------------
// The tracers
// ---------------------------------------------------------------------------

let spansMade = 0
const memoryTracer = Tracer.make({
  span: (options) => {
    spansMade++
    return Tracer.nativeTracer.span(options)
  }
})

/** An OTLP/HTTP receiver in a child process: reads each body, answers 200. */
const startReceiver = () =>
  new Promise<{ url: string; stop: () => void; requests: () => number }>((resolve, reject) => {
    const code = `
      const http = require("node:http"); let n = 0
      const server = http.createServer((req, res) => { req.resume(); req.on("end", () => { n++; res.writeHead(200, {"content-type": "application/json"}); res.end("{}") }) })
      server.listen(0, "127.0.0.1", () => console.log("port " + server.address().port))
      process.on("SIGTERM", () => { console.log("requests " + n); process.exit(0) })`
    const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] })
    let requests = 0
    child.stdout.setEncoding("utf8")
    child.stdout.on("data", (text: string) => {
      const port = /port (\d+)/.exec(text)
      if (port) resolve({ url: `http://127.0.0.1:${port[1]}`, stop: () => child.kill("SIGTERM"), requests: () => requests })
      const count = /requests (\d+)/.exec(text)
      if (count) requests = Number(count[1])
    })
    child.once("error", reject)
  })

// ---------------------------------------------------------------------------
// The measured shutdowns
// ---------------------------------------------------------------------------

/** Wall-clock and CPU time (user + system, all of this process's threads) in ms. */
const now = () => {
  const cpu = process.cpuUsage()
  return { wall: Number(process.hrtime.bigint()) / 1e6, cpu: (cpu.user + cpu.system) / 1000 }
}
const since = (t0: ReturnType<typeof now>) => {
  const t1 = now()
  return { wall: t1.wall - t0.wall, cpu: t1.cpu - t0.cpu }
}

interface Sample {
  readonly register: { readonly wall: number; readonly cpu: number }
  readonly shutdown: { readonly wall: number; readonly cpu: number }
}

/** Register 1,000 no-op steps (timed), then trigger and run the shutdown to its report (timed). */
const steps = (w: Winddown) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const shutdown = yield* w.Shutdown.make({ timeout: "60 seconds" }).pipe(Scope.provide(scope), Effect.orDie)
    const r0 = now()
    for (let i = 0; i < STEPS; i++) yield* shutdown.addStep(`step ${i}`, Effect.void)
    const register = since(r0)
    const s0 = now()
    shutdown.triggerUnsafe({ _tag: "manual", message: "bench" })
    yield* Scope.close(scope, Exit.void)
    return { register, shutdown: since(s0) } satisfies Sample
  })

/** 10,000 units in flight in one drain; trigger, let them finish, run the shutdown to its report (timed). */
const drain = (w: Winddown) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const shutdown = yield* w.Shutdown.make({ timeout: "60 seconds" }).pipe(Scope.provide(scope), Effect.orDie)
    const d = yield* w.Drain.make("bench").pipe(Effect.provideService(w.Shutdown.Shutdown, shutdown), Effect.orDie)
    const latch = yield* Latch.make(false)
    const r0 = now()
    for (let i = 0; i < IN_FLIGHT; i++) yield* Effect.orDie(d.run(latch.await))
    const register = since(r0)
    yield* Effect.yieldNow
    const s0 = now()
    shutdown.triggerUnsafe({ _tag: "manual", message: "bench" })
    yield* Effect.forkDetach(Effect.andThen(Effect.sleep(1), latch.open))
    yield* Scope.close(scope, Exit.void)
    const report = yield* shutdown.awaitReport
    const units = report.sections.find((s) => s.name === "drain bench")?.data as { completed?: number } | undefined
    if (units?.completed !== IN_FLIGHT) throw new Error(`drain completed ${units?.completed}`)
    return { register, shutdown: since(s0) } satisfies Sample
  })

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const median = (xs: ReadonlyArray<number>) => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const shuffle = <A>(xs: Array<A>) => {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j]!, xs[i]!]
  }
  return xs
}

const variants = ["before", "no tracer", "memory tracer", "OTLP"] as const
type Variant = (typeof variants)[number]
const workloads = [
  { name: `${STEPS.toLocaleString("en")} steps`, run: steps },
  { name: `drain of ${IN_FLIGHT.toLocaleString("en")} fibers`, run: drain }
] as const

/** What a variant runs with: its winddown and what it provides. */
const prepare = async (variant: Variant) => {
  const w = variant === "before" ? await loadBefore(BEFORE) : Now
  if (variant === "memory tracer") {
    return { w, provide: <A, E>(e: Effect.Effect<A, E>) => Effect.provideService(e, Tracer.Tracer, memoryTracer), close: Effect.void }
  }
  if (variant === "OTLP") {
    const scope = Effect.runSync(Scope.make())
    const otlp = await Effect.runPromise(
      Layer.buildWithScope(
        Otlp.layerJson({ baseUrl: process.env.BENCH_OTLP_URL!, resource: { serviceName: "bench" }, shutdownTimeout: "500 millis" })
          .pipe(Layer.provide(FetchHttpClient.layer)),
        scope
      )
    )
    return { w, provide: <A, E>(e: Effect.Effect<A, E>) => Effect.provideContext(e, otlp), close: Scope.close(scope, Exit.void) }
  }
  return { w, provide: <A, E>(e: Effect.Effect<A, E>) => e, close: Effect.void }
}

/**
 * The given variants (one, from main) in this process. Prints
 * `{ "variant | workload": Sample[] }` as JSON on its last line.
 */
const child = async (names: ReadonlyArray<Variant>) => {
  const prepared = await Promise.all(names.map(async (name) => ({ name, ...(await prepare(name)) })))
  const quiet = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.runPromise(effect.pipe(Effect.provideService(References.MinimumLogLevel, "None")))
  const out: Record<string, Array<Sample>> = {}
  const warmup = 5
  for (let i = 0; i < warmup + SAMPLES; i++) {
    for (const v of shuffle([...prepared])) {
      for (const wl of workloads) {
        const made = spansMade
        const sample = await quiet(v.provide(Effect.scoped(wl.run(v.w))))
        // The in-memory tracer did trace: a span per step, phase and shutdown.
        if (v.name === "memory tracer" && wl.run === steps && spansMade - made < STEPS) {
          throw new Error(`${spansMade - made} spans for ${STEPS} steps`)
        }
        if (i >= warmup) (out[`${v.name} | ${wl.name}`] ??= []).push(sample)
      }
    }
  }
  for (const v of prepared) await Effect.runPromise(v.close)
  console.log(JSON.stringify(out))
}

const runChild = (names: ReadonlyArray<Variant>, env: Record<string, string>) =>
  new Promise<Record<string, Array<Sample>>>((resolve, reject) => {
    const proc = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "--child", names.join(","), "--before", BEFORE, "--samples", String(SAMPLES)], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"]
    })
    let stdout = ""
    proc.stdout.setEncoding("utf8")
    proc.stdout.on("data", (text: string) => (stdout += text))
    proc.once("error", reject)
    proc.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`${names.join(",")}: exit ${code}`))
      resolve(JSON.parse(stdout.trim().split("\n").pop()!))
    })
  })

const main = async () => {
  await loadBefore(BEFORE) // extract it once, before the children race to
  const receiver = await startReceiver()
  const samples = new Map<string, Array<Sample>>()
  const key = (workload: string, variant: string) => `${variant} | ${workload}`
  const only = args.includes("--only") ? option("only", "").split(",") : undefined
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of shuffle(variants.filter((v) => only === undefined || only.includes(v)))) {
      const result = await runChild([variant], { BENCH_OTLP_URL: receiver.url })
      for (const [k, list] of Object.entries(result)) samples.set(k, [...(samples.get(k) ?? []), ...list])
    }
    process.stderr.write(`round ${round + 1}/${ROUNDS}\n`)
  }
  receiver.stop()
  const raw = path.join(root, "bench", "out", "telemetry.json")
  fs.writeFileSync(raw, JSON.stringify(Object.fromEntries(samples), null, 1))

  const fmt = (ms: number) => (Number.isNaN(ms) ? "-" : `${ms.toFixed(2)} ms`)
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`
  const table = (title: string, pick: (s: Sample) => number) => {
    console.log(`\n${title}`)
    console.table(workloads.map((wl) => {
      const m = Object.fromEntries(variants.map((v) => [v, median((samples.get(key(wl.name, v)) ?? []).map(pick))]))
      return {
        workload: wl.name,
        ...Object.fromEntries(variants.map((v) => [v, fmt(m[v]!)])),
        "no tracer / before": ratio(m["no tracer"]!, m["before"]!),
        "memory / no tracer": ratio(m["memory tracer"]!, m["no tracer"]!),
        "OTLP / no tracer": ratio(m["OTLP"]!, m["no tracer"]!)
      }
    }))
  }
  table("the shutdown, trigger to report: CPU time (user + system), medians", (s) => s.shutdown.cpu)
  table("the shutdown, trigger to report: wall clock, medians", (s) => s.shutdown.wall)
  table("registering (1,000 addStep / 10,000 drain.run, while the service runs): CPU time, medians", (s) => s.register.cpu)
  console.log(
    `\n${ROUNDS} rounds × ${SAMPLES} samples per variant, each variant in its own process, shuffled in each round; ` +
      `"before" is ${BEFORE}; Node ${process.version}; every sample in ${path.relative(root, raw)}`
  )
}

const childVariants = args.includes("--child") ? option("child", "").split(",") as Array<Variant> : undefined
await (childVariants === undefined ? main() : child(childVariants))
