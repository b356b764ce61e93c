// `winddown timeline`, run for real (node --import tsx bin/winddown.ts, as
// npx runs it here): it draws the last report of a log, or all of them, and
// anything wrong with the input is one line on stderr and a non-zero exit.
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ShutdownReport, ShutdownTimeline } from "../src/index.ts"
import { runCommand } from "./support/command.ts"
import { clean, forced } from "./support/timelineReports.ts"

const root = path.join(import.meta.dirname, "..")
const bin = path.join(root, "bin", "winddown.ts")

const winddown = (args: ReadonlyArray<string>, input?: string) =>
  runCommand([process.execPath, "--import", "tsx", bin], args, input, root)

const log = [
  "[demo] listening on http://localhost:3000 (pid 1234)",
  ShutdownReport.toJsonLine(clean),
  "[demo] restarted",
  JSON.stringify({ event: ShutdownTimeline.reportEvent, level: "INFO", ...forced })
].join("\n") + "\n"

/** The failure contract: exactly one line on stderr, nothing that looks like a stack trace, nothing on stdout. */
const assertOneLine = (r: { readonly code: number | null; readonly stdout: string; readonly stderr: string }, code: number, pattern: RegExp) => {
  assert.strictEqual(r.code, code, r.stderr)
  assert.strictEqual(r.stdout, "")
  assert.match(r.stderr, /^winddown timeline: [^\n]+\n$/)
  assert.notMatch(r.stderr, /\n\s+at |Error:/)
  assert.match(r.stderr, pattern)
}

describe("winddown timeline", () => {
  it("draws the last report of a log read from stdin", async () => {
    const r = await winddown(["timeline"], log)
    assert.strictEqual(r.code, 0, r.stderr)
    assert.strictEqual(r.stderr, "")
    assert.strictEqual(r.stdout, ShutdownTimeline.toSvg(forced))
  })

  it("reads a file, takes --width, and with --all stacks every report", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-timeline-"))
    try {
      const file = path.join(dir, "service.log")
      fs.writeFileSync(file, log)
      const one = await winddown(["timeline", file, "--width", "1200"])
      assert.strictEqual(one.stdout, ShutdownTimeline.toSvg(forced, { width: 1200 }))
      const all = await winddown(["timeline", "--all", file])
      assert.strictEqual(all.code, 0, all.stderr)
      assert.strictEqual(all.stdout, ShutdownTimeline.toSvgAll([clean, forced]))
      const out = path.join(dir, "pictures")
      const split = await winddown(["timeline", "--all", "--out-dir", out], log)
      assert.strictEqual(split.code, 0, split.stderr)
      assert.deepStrictEqual(fs.readdirSync(out).sort(), ["shutdown-1.svg", "shutdown-2.svg"])
      assert.strictEqual(fs.readFileSync(path.join(out, "shutdown-1.svg"), "utf8"), ShutdownTimeline.toSvg(clean))
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("--help explains the command and exits 0", async () => {
    const r = await winddown(["timeline", "--help"])
    assert.strictEqual(r.code, 0)
    assert.match(r.stdout, /^Usage: winddown timeline \[FILE\]/)
    assert.include(r.stdout, "--all")
  })

  it("a log without a report: one line saying what it looked for, exit 1", async () => {
    assertOneLine(await winddown(["timeline"], "hello\n[winddown] report: signal SIGTERM; 1 s\n"), 1, /no shutdown report in standard input/)
  })

  it("a malformed report line: one line naming the line, exit 1", async () => {
    assertOneLine(await winddown(["timeline"], `${log}[winddown] report {"reason": {"_tag"\n`), 1, /standard input, line 5: the JSON after "\[winddown\] report" is malformed/)
    assertOneLine(await winddown(["timeline"], `{"event": "winddown.report", "reason": 1}\n`), 1, /line 1: not a shutdown report: /)
  })

  it("an unreadable file, a directory, a bad option: one line each", async () => {
    assertOneLine(await winddown(["timeline", "/nonexistent/service.log"]), 1, /cannot read \/nonexistent\/service\.log: no such file$/m)
    assertOneLine(await winddown(["timeline", root]), 1, /it is a directory/)
    assertOneLine(await winddown(["timeline", "--bogus"], log), 2, /Unknown option '--bogus'; --help for usage/)
    assertOneLine(await winddown(["timeline", "--width", "wide"], log), 2, /--width must be/)
    const unknown = await winddown(["draw"], log)
    assert.strictEqual(unknown.code, 2)
    assert.match(unknown.stderr, /^winddown unknown command "draw"[^\n]*\n$/)
  })
})
