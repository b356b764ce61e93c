/**
 * `npm run bench:rolling`: rolling restarts of N replicas behind HAProxy under
 * keep-alive load and job submissions, for winddown and the alternatives in
 * the same run (see harness.ts for what one run does, servers/ for what each
 * contender runs). Prints a Markdown table, writes bench/out/rolling.json and
 * bench/out/rolling.svg.
 *
 *   npm run bench:rolling -- [rolls=3] [duration=<s>] [replicas=3] [connections=64]
 *     [contenders=winddown,effect,terminus,fastify] [pre-stop=2000] [grace=10000]
 *     [retries=0] [inter=200] [fall=1] [rise=1] [job-every=200] [workers=8] [gap=1000] [seed=11]
 *
 * Needs HAProxy (`apt-get install haproxy`) and PostgreSQL (DATABASE_URL,
 * default postgres://postgres@127.0.0.1:5432/test). Ctrl+C stops everything it
 * started and drops its tables.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Chart from "./chart.ts"
import * as Harness from "./harness.ts"

const args = new Map(process.argv.slice(2).map((a) => a.split("=", 2) as [string, string]))
const known = new Set([
  "rolls", "duration", "replicas", "connections", "contenders", "pre-stop", "grace", "retries", "inter", "fall", "rise",
  "job-every", "workers", "gap", "seed"
])
for (const key of args.keys()) if (!known.has(key)) throw new Error(`unknown argument ${key}; known: ${[...known].join(", ")}`)
const int = (name: string, fallback: number, min: number, max: number): number => {
  const raw = args.get(name)
  if (raw === undefined) return fallback
  const v = Number(raw)
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be a whole number from ${min} to ${max}, got ${raw}`)
  return v
}
const d = Harness.defaults
const names = (args.get("contenders") ?? "winddown,effect,terminus,fastify").split(",")
for (const n of names) if (!(n in Harness.contenders)) throw new Error(`unknown contender ${n}; known: ${Object.keys(Harness.contenders).join(", ")}`)
const duration = args.get("duration") === undefined ? undefined : int("duration", 0, 1, 3_600)
const options: Partial<Harness.Options> = {
  rolls: int("rolls", duration === undefined ? d.rolls : 1, 1, 100),
  durationS: duration,
  replicas: int("replicas", d.replicas, 2, 16),
  connections: int("connections", d.connections, 1, 1_000),
  preStopMs: int("pre-stop", d.preStopMs, 0, 60_000),
  graceMs: int("grace", d.graceMs, 1_000, 600_000),
  retries: int("retries", d.retries, 0, 10),
  checkIntervalMs: int("inter", d.checkIntervalMs, 10, 60_000),
  fall: int("fall", d.fall, 1, 10),
  rise: int("rise", d.rise, 1, 10),
  jobEveryMs: int("job-every", d.jobEveryMs, 10, 60_000),
  workers: int("workers", d.workers, 1, 64),
  gapMs: int("gap", d.gapMs, 0, 600_000),
  seed: int("seed", d.seed, 0, 2 ** 31 - 1)
}

Harness.installCleanup()
const machine = `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model.trim() ?? "cpu"}, ${os.platform()} ${os.release()}`
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(" ")
console.log(`# winddown rolling-restart bench\n\n${machine}; load average at start ${load()}\n`)
for (const n of names) console.log(`- ${Harness.contenders[n as Harness.ContenderName].title}: ${Harness.contenders[n as Harness.ContenderName].description}`)

const results: Array<Harness.Result> = []
for (const n of names) {
  const r = await Harness.runContender(n as Harness.ContenderName, options)
  results.push(r)
  process.stderr.write(`[${n}] ${r.requests} requests, ${r.failed} failed; jobs ${r.jobs.accepted} accepted, ${r.jobs.lost} lost, ${r.jobs.completedTwice} twice\n`)
}

// ---- table ------------------------------------------------------------------------

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const ms = (n: number) => (Number.isFinite(n) ? (n >= 100 ? n.toFixed(0) : n.toFixed(1)) : "n/a")
const rolled = (r: Harness.Result) => r.replicas.filter((p) => !p.final)
const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const codes = (r: Harness.Result) => {
  const counts = new Map<string, number>()
  for (const p of rolled(r)) {
    const c = p.killed ? "killed" : String(p.exitCode ?? p.exitSignal)
    counts.set(c, (counts.get(c) ?? 0) + 1)
  }
  return [...counts].map(([c, n]) => `${c} ×${n}`).join(", ")
}
const rows: Array<[string, (r: Harness.Result) => string]> = [
  ["full rolls (replicas replaced)", (r) => `${r.rolls} (${r.restarts.length})`],
  ["requests (load time)", (r) => `${fmt(r.requests)} (${(r.durationMs / 1000).toFixed(0)} s)`],
  ["**failed**", (r) => `**${fmt(r.failed)}**`],
  ["failed: reset / 5xx / timeout / cut / refused / other", (r) => {
    const k = r.failedByKind
    return `${k.reset} / ${k["5xx"]} / ${k.timeout} / ${k.cut} / ${k.refused} / ${k.other}`
  }],
  ["latency during restarts p50 / p99 / max (ms)", (r) => `${ms(r.latencyDuringRestarts.p50)} / ${ms(r.latencyDuringRestarts.p99)} / ${ms(r.latencyDuringRestarts.max)}`],
  ["latency, whole run p50 / p99 / max (ms)", (r) => `${ms(r.latency.p50)} / ${ms(r.latency.p99)} / ${ms(r.latency.max)}`],
  ["jobs accepted / completed", (r) => `${fmt(r.jobs.accepted)} / ${fmt(r.jobs.completed)}`],
  ["jobs lost / completed twice", (r) => `${r.jobs.lost} / ${r.jobs.completedTwice}`],
  ["jobs resumed after a checkpoint", (r) => (r.checkpoints ? String(r.jobs.ranMoreThanOnce) : "— (no checkpoints)")],
  ["replica SIGTERM → exit, median (min–max) ms", (r) => {
    const t = rolled(r).map((p) => p.timeToExitMs ?? NaN)
    return `${ms(median(t))} (${ms(Math.min(...t))}–${ms(Math.max(...t))})`
  }],
  ["replica exit codes", codes],
  ["HAProxy retries / redispatches", (r) => `${r.haproxy.retries} / ${r.haproxy.redispatches}`],
  ["HAProxy connection / response errors (its stats)", (r) => `${r.haproxy.connectionErrors} / ${r.haproxy.responseErrors}`],
  ["replicas that died before ready (started again)", (r) => String(r.startFailures.length)]
]
const header = ["", ...results.map((r) => r.title)]
console.log(`\n## Rolling restarts: ${results[0]?.options.replicas} replicas behind HAProxy, ${options.connections} keep-alive connections + a job every ${options.jobEveryMs} ms\n`)
console.log(`| ${header.join(" | ")} |`)
console.log(`|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`)
for (const [label, f] of rows) console.log(`| ${label} | ${results.map(f).join(" | ")} |`)
console.log(
  `\nSettings: pre-stop ${options.preStopMs} ms (winddown's preStop, terminus's beforeShutdown), shutdown budget ${options.graceMs} ms each, HAProxy inter ${options.checkIntervalMs} ms fall ${options.fall} rise ${options.rise}, retries ${options.retries}, ${options.workers} job slots per replica, ${options.gapMs} ms between replacements.`
)
for (const r of results) {
  for (const [kind, samples] of Object.entries(r.failureSamples)) console.log(`- ${r.title}, ${kind}: ${samples.join("; ")}`)
}
console.log(`\nload average at the end: ${load()} (above ${os.cpus().length}: other work shared the machine)`)

// ---- files ------------------------------------------------------------------------

const outDir = path.join(Harness.root, "bench/out")
fs.mkdirSync(outDir, { recursive: true })
fs.writeFileSync(path.join(outDir, "rolling.json"), JSON.stringify({ machine, options, results }, null, 2))
fs.writeFileSync(
  path.join(outDir, "rolling.svg"),
  Chart.render(results, {
    caption: `${results[0]?.options.replicas} replicas, ${options.connections} keep-alive connections + a job every ${options.jobEveryMs} ms; pre-stop ${options.preStopMs} ms; HAProxy inter ${options.checkIntervalMs} ms, fall ${options.fall}, rise ${options.rise}, retries ${options.retries}; ${machine}`
  })
)
console.log(`\nwrote bench/out/rolling.json and bench/out/rolling.svg`)
