// The publishable build (npm run build) runs on plain Node, with no
// TypeScript loader: a consumer imports "winddown" and "winddown/node" by
// name through the built package's exports and shuts down on a real SIGTERM,
// and the package's `winddown` command runs from node_modules/.bin.
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { ShutdownReport, ShutdownTimeline } from "../src/index.ts"
import { runCommand } from "./support/command.ts"
import { clean, forced } from "./support/timelineReports.ts"

const root = path.join(import.meta.dirname, "..")
const build = path.join(root, "build")

const consumer = `
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { Shutdown } from "winddown"
import { NodeShutdown } from "winddown/node"
const program = Effect.gen(function*() {
  yield* Shutdown.addStep("close db", Effect.sync(() => console.log("db closed")))
  console.log("ready")
  return yield* Effect.never
})
NodeRuntime.runMain(program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "5 seconds" }))))
`

describe("npm run build", () => {
  beforeAll(() => {
    execFileSync(process.execPath, ["--import", "tsx", path.join(root, "scripts", "build.ts")], { cwd: root, stdio: "pipe" })
  }, 120_000)

  it("produces a package that plain node imports by name and that shuts down on SIGTERM", async () => {
    const published = JSON.parse(fs.readFileSync(path.join(build, "package.json"), "utf8"))
    assert.deepStrictEqual(Object.keys(published.exports), [".", "./node", "./testing", "./bullmq", "./amqp", "./nats"])
    assert.isTrue(fs.existsSync(path.join(build, "dist", "node", "index.d.ts")))
    // a consumer project whose node_modules/winddown is the build
    const app = path.join(build, "consumer")
    fs.mkdirSync(path.join(app, "node_modules"), { recursive: true })
    fs.symlinkSync(build, path.join(app, "node_modules", "winddown"), "dir")
    fs.writeFileSync(path.join(app, "main.mjs"), consumer)
    const child = spawn(process.execPath, [path.join(app, "main.mjs")], { cwd: app, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve))
    const guard = setTimeout(() => child.kill("SIGKILL"), 20_000)
    for (let i = 0; i < 200 && !output.includes("ready"); i++) await new Promise((r) => setTimeout(r, 50))
    child.kill("SIGTERM")
    const code = await exited
    clearTimeout(guard)
    assert.strictEqual(code, 0, output)
    assert.include(output, "db closed")
    assert.include(output, "shutdown complete")
  }, 60_000)

  it("publishes the winddown command: installed in node_modules/.bin, it draws a log's report on plain node", async () => {
    const published = JSON.parse(fs.readFileSync(path.join(build, "package.json"), "utf8"))
    assert.deepStrictEqual(published.bin, { winddown: "./bin/winddown.js" })
    assert.include(published.files, "bin")
    const command = path.join(build, published.bin.winddown)
    assert.match(fs.readFileSync(command, "utf8"), /^#!\/usr\/bin\/env node\n/)
    // as npm links it: node_modules/.bin/winddown -> ../winddown/bin/winddown.js, run through its shebang
    const app = path.join(build, "command-consumer")
    fs.mkdirSync(path.join(app, "node_modules", ".bin"), { recursive: true })
    fs.symlinkSync(build, path.join(app, "node_modules", "winddown"), "dir")
    const linked = path.join(app, "node_modules", ".bin", "winddown")
    fs.symlinkSync(path.join("..", "winddown", "bin", "winddown.js"), linked)
    const log = `${ShutdownReport.toJsonLine(clean)}\n${JSON.stringify({ event: ShutdownTimeline.reportEvent, ...forced })}\n`
    const drawn = await runCommand([linked], ["timeline"], log, app)
    assert.strictEqual(drawn.code, 0, drawn.stderr)
    assert.strictEqual(drawn.stdout, ShutdownTimeline.toSvg(forced))
    const bad = await runCommand([linked], ["timeline"], "no report here\n", app)
    assert.strictEqual(bad.code, 1)
    assert.match(bad.stderr, /^winddown timeline: no shutdown report in standard input[^\n]*\n$/)
  }, 60_000)
})
