/**
 * The demo's fault matrix (issue 12), against real processes: bad settings,
 * a second instance, ports in use, hostile requests, torn and corrupted
 * journals, a full disk, SIGKILL at random moments. Each checks that nothing
 * acknowledged (202) is lost, that the exit code is the documented one
 * (README, "Operating it") and that a refusal is one clear line.
 *
 * The groups run concurrently: most of the time goes to waiting for
 * processes. Every test kills what it started when it ends (`session`).
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn as spawnProcess, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { badSettings } from "../support/badSettings.ts"
import {
  holdPort,
  inStartSlot,
  lines,
  listeningPort,
  postJob,
  request,
  root,
  session,
  stopDemo,
  submitUntil,
  tempDir
} from "../support/demo.ts"
import { freePort } from "../support/http.ts"

const fixtures = path.join(import.meta.dirname, "..", "fixtures")
const racer = path.join(fixtures, "demo_lock_racer.ts")

/** Poll `condition` every 50 ms, up to `timeoutMs`. */
const until = async (condition: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** The pid of a process that has exited. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!

const accepted = (id: string, ms: number) => `{"t":"accepted","id":"${id}","ms":${ms},"at":1}\n`

describe.concurrent("bad settings", () => {
  it(`every generated bad value (${badSettings.length}) is refused by the demo's own startup check, with one line naming the variable and exit 78`, async ({ onTestFinished }) => {
    // One process checks them all (the same code path as a start, without the ports and files).
    const child = spawnProcess(process.execPath, ["--import", "tsx", path.join(fixtures, "demo_check_settings.ts")], {
      cwd: root,
      stdio: ["pipe", "pipe", "inherit"]
    })
    onTestFinished(async () => void child.kill("SIGKILL"))
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stdin.end(JSON.stringify([...badSettings.map(({ value, variable }) => ({ [variable]: value })), {}]))
    const code = await new Promise((resolve) => child.on("close", resolve))
    assert.strictEqual(code, 0, out)
    const results = lines(out).map((l) => JSON.parse(l) as { code: number; line?: string })
    assert.strictEqual(results.length, badSettings.length + 1)
    badSettings.forEach(({ namesVariable, value, variable }, i) => {
      const { code, line } = results[i]!
      const context = `${variable}=${JSON.stringify(value)}: ${line}`
      assert.strictEqual(code, 78, context)
      assert.match(line!, /^\[demo\] refused to start: [^\n]+$/, context)
      if (namesVariable) assert.include(line, `${variable}=${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)}`, context)
    })
    assert.deepStrictEqual(results[badSettings.length], { code: 0 }, "no variable set: the defaults")
  }, 120_000)

  it("real starts: a bad value of each variable, a data directory that is a file or not writable, a journal that is a directory or a device: one line, the documented code, nothing left listening or locked", async ({ onTestFinished }) => {
    const { runDemo } = session(onTestFinished)
    const port = String(await freePort())
    const file = path.join(tempDir("faults-file"), "file")
    fs.writeFileSync(file, "")
    const journalDir = tempDir("faults-journal-dir")
    fs.mkdirSync(path.join(journalDir, "journal.jsonl"))
    const journalDevice = tempDir("faults-journal-dev")
    fs.symlinkSync("/dev/full", path.join(journalDevice, "journal.jsonl"))
    // Not writable: a read-only directory for a normal user; root writes anywhere, but not in /proc.
    const unwritable = process.getuid?.() === 0 ? "/proc/1" : tempDir("faults-readonly")
    if (unwritable !== "/proc/1") fs.chmodSync(unwritable, 0o555)
    const cases: Array<{ readonly env: Record<string, string>; readonly code: number; readonly says: string }> = [
      { env: { PORT: "" }, code: 78, says: `PORT="": expected a whole number from 0 to 65535 (it is set but empty` },
      { env: { HOST: "192.0.2.1" }, code: 78, says: `HOST="192.0.2.1": not an address of this machine (EADDRNOTAVAIL)` },
      { env: { WORKERS: "1.5" }, code: 78, says: `WORKERS="1.5": expected a whole number from 1 to 256` },
      { env: { HEALTH_PORT: port }, code: 78, says: `HEALTH_PORT="${port}": must differ from PORT="${port}"` },
      { env: { DATA_DIR: file }, code: 78, says: `DATA_DIR=${JSON.stringify(file)}: is a file, not a directory` },
      { env: { DATA_DIR: unwritable }, code: 78, says: `DATA_DIR=${JSON.stringify(unwritable)}: ` },
      { env: { DATA_DIR: journalDir }, code: 74, says: `journal ${path.join(journalDir, "journal.jsonl")}: is a directory, not a file` },
      { env: { DATA_DIR: journalDevice }, code: 74, says: `journal ${path.join(journalDevice, "journal.jsonl")}: is not a regular file` },
      { env: { WINDDOWN_TIMEOUT: "25" }, code: 78, says: `WINDDOWN_TIMEOUT="25": expected a duration with a unit` }
    ]
    const results = await Promise.all(cases.map(async ({ env }) => {
      const dataDir = env.DATA_DIR ?? tempDir("faults-setting")
      const exit = await runDemo({ PORT: port, DATA_DIR: dataDir, ...env })
      return { exit, dataDir }
    }))
    cases.forEach(({ code, env, says }, i) => {
      const { dataDir, exit } = results[i]!
      const context = `${JSON.stringify(env)}: exit ${exit.code ?? exit.signal}\n${exit.output}`
      assert.strictEqual(exit.code, code, context)
      assert.strictEqual(lines(exit.output).length, 1, context)
      assert.match(exit.output, /^\[demo\] refused to start: [^\n]+\n$/, context)
      assert.include(exit.output, says, context)
      // Refused before anything listened or was taken.
      if (fs.existsSync(dataDir) && fs.statSync(dataDir).isDirectory() && dataDir.startsWith("/tmp")) {
        assert.notInclude(fs.readdirSync(dataDir), "instance.lock", context)
      }
    })
    // and the port it would have used is free
    await new Promise<void>((resolve, reject) => {
      const server = net.createServer().once("error", reject).listen(Number(port), "127.0.0.1", () => server.close(() => resolve()))
    })
  }, 180_000)

  it("--check validates the settings without starting: exit 0 with a line, or the refusal", async ({ onTestFinished }) => {
    const { runDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-check")
    const [good, bad] = await Promise.all([
      runDemo({ PORT: "0", DATA_DIR: dataDir }, ["--check"]),
      runDemo({ PORT: "x", DATA_DIR: dataDir }, ["--check"])
    ])
    assert.strictEqual(good.code, 0, good.output)
    assert.strictEqual(good.output, "[demo] settings ok\n")
    assert.strictEqual(bad.code, 78, bad.output)
    assert.strictEqual(bad.output, `[demo] refused to start: PORT="x": expected a whole number from 0 to 65535\n`)
    assert.deepStrictEqual(fs.readdirSync(dataDir), [])
  }, 120_000)
})

describe.concurrent("torn and corrupted journals", () => {
  it("issue 12 #1: a torn last line after a line of invalid UTF-8 is cut by bytes; the job acknowledged after the repair survives a restart", async ({ onTestFinished }) => {
    const { startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-torn")
    const file = path.join(dataDir, "journal.jsonl")
    // The issue's bytes, after a finished job A, so that the acknowledged job is the first line appended.
    const head = `${accepted("A", 5)}{"t":"completed","id":"A","result":"x","at":2}\n`
    fs.writeFileSync(file, Buffer.concat([Buffer.from(head), Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(`{"t":"accepted","id":"T","ms":50`)]))
    const first = await startDemo(dataDir)
    const posted = await postJob(first.port, 10)
    assert.strictEqual(posted.status, 202, posted.text)
    const exit = await stopDemo(first)
    assert.strictEqual(exit.code, 0, exit.output)
    const second = await startDemo(dataDir)
    const found = await request(second.port, { path: `/jobs/${posted.json.id}` })
    assert.strictEqual(found.status, 200, `${found.text}\n${second.child.output()}`)
    assert.strictEqual((await request(second.port, { path: "/jobs/A" })).json.state, "done")
    // The second start sees only the line that was always bad.
    const warnings = lines(second.child.output()).filter((l) => l.includes("journal:"))
    assert.strictEqual(warnings.length, 1, warnings.join("\n"))
    assert.include(warnings[0], "skipped line 3 (not valid UTF-8)")
    await stopDemo(second)
  }, 180_000)
})

describe.concurrent("one instance per data directory", () => {
  it("issue 12 #2: a second instance on the same data directory refuses with one line naming it and the holder's pid (exit 75), taking no job", async ({ onTestFinished }) => {
    const { runDemo, startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-second")
    const first = await startDemo(dataDir, { WORKERS: "1" })
    // One job runs (long), two wait in the journal: a second instance must not take them.
    for (let i = 0; i < 3; i++) assert.strictEqual((await postJob(first.port, 60_000)).status, 202)
    const journal = path.join(dataDir, "journal.jsonl")
    await until(async () => (await request(first.port, { path: "/jobs" })).json.running === 1)
    const before = fs.readFileSync(journal)
    const second = await runDemo({ PORT: "0", DATA_DIR: dataDir })
    assert.strictEqual(second.code, 75, second.output)
    assert.strictEqual(
      second.output,
      `[demo] refused to start: DATA_DIR=${JSON.stringify(dataDir)} is in use by another instance: pid ${first.child.pid} holds ${
        path.join(dataDir, "instance.lock")
      }\n`
    )
    assert.deepStrictEqual(fs.readFileSync(journal), before)
    const exit = await stopDemo(first)
    assert.strictEqual(exit.code, 0, exit.output)
    assert.isFalse(fs.existsSync(path.join(dataDir, "instance.lock")), "the lock outlived a clean stop")
  }, 180_000)

  it("issue 12 #2: starters racing to take over a stale lock (its holder was killed): exactly one wins", async ({ onTestFinished }) => {
    const { spawn } = session(onTestFinished)
    // Two rounds at once, each in its own directory, four starters each.
    await Promise.all([0, 1].map(async () => {
      const dataDir = tempDir("faults-race")
      fs.writeFileSync(path.join(dataDir, "instance.lock"), `holder ${deadPid()} 00dead00 -\n`)
      const startAt = String(Date.now() + 4_000)
      const racers = Array.from({ length: 4 }, () => spawn(racer, { env: { DATA_DIR: dataDir, START_AT: startAt } }))
      const said = await Promise.all(racers.map((r) => r.waitFor(/^(held|refused) \d+/m, 60_000)))
      const winners = said.filter((l) => l.startsWith("held"))
      assert.strictEqual(winners.length, 1, said.join("\n"))
      const winner = winners[0]!.split(" ")[1]
      for (const line of said) if (line.startsWith("refused")) assert.strictEqual(line, `refused ${winner}`)
      for (const r of racers) if (String(r.pid) === winner) r.signal("SIGTERM")
      await Promise.all(racers.map((r) => r.exited))
      assert.isFalse(fs.existsSync(path.join(dataDir, "instance.lock")))
    }))
  }, 180_000)

  it("issue 12 #2: a port in use refuses with one line naming the variable and the port (exit 75), before taking any job", async ({ onTestFinished }) => {
    const { runDemo } = session(onTestFinished)
    const held = await holdPort()
    try {
      for (const variable of ["PORT", "HEALTH_PORT"]) {
        const dataDir = tempDir("faults-port")
        const journal = path.join(dataDir, "journal.jsonl")
        fs.writeFileSync(journal, accepted("waiting", 10))
        const env = variable === "PORT" ? { PORT: String(held.port) } : { PORT: "0", HEALTH_PORT: String(held.port) }
        const exit = await runDemo({ DATA_DIR: dataDir, ...env })
        assert.strictEqual(exit.code, 75, exit.output)
        assert.strictEqual(
          exit.output,
          `[demo] refused to start: ${variable}="${held.port}": 127.0.0.1:${held.port} is in use by another process (EADDRINUSE)\n`
        )
        // No worker ran: the pending job was not started, and the lock is released.
        assert.strictEqual(fs.readFileSync(journal, "utf8"), accepted("waiting", 10))
        assert.deepStrictEqual(fs.readdirSync(dataDir), ["journal.jsonl"])
      }
    } finally {
      await held.close()
    }
  }, 180_000)
})

/** Send `head` on a raw socket, then nothing more; resolves with what the server said and when it closed. */
const rawRequest = (port: number, head: string) =>
  new Promise<{ readonly reply: string; readonly afterMs: number }>((resolve, reject) => {
    const started = Date.now()
    const socket = net.connect(port, "127.0.0.1", () => socket.write(head))
    let reply = ""
    socket.on("data", (d) => (reply += d.toString("latin1")))
    socket.on("error", reject)
    socket.on("close", () => resolve({ reply, afterMs: Date.now() - started }))
  })

describe.concurrent("hostile requests", () => {
  it("issue 12 #6: bodies, queries, methods and paths the API does not accept are refused with a clear status and a one-line JSON error; nothing is accepted by mistake", async ({ onTestFinished }) => {
    const { startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-hostile")
    const demo = await startDemo(dataDir)
    const post = (body: string | Buffer, headers: Record<string, string> = {}) =>
      request(demo.port, { method: "POST", path: "/jobs", body, headers })
    // A slow client (the head, then half its body, then nothing) runs alongside the others.
    const slow = rawRequest(demo.port, "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"ms\":")
    const refusals: Array<[string, Promise<Awaited<ReturnType<typeof request>>>, number, string?]> = [
      ["20 KiB body", post(JSON.stringify({ ms: 5, pad: "x".repeat(20_000) })), 413],
      ["10 MB body", post(Buffer.alloc(10_000_000, 32)), 413],
      ["20 KiB chunked body (no Content-Length)", post(Buffer.alloc(20_000, 32), { "transfer-encoding": "chunked" }), 413],
      ["not JSON", post("nope"), 400],
      ["empty body", post(""), 400],
      ["truncated JSON", post(`{"ms":`), 400],
      ["ms a string", post(`{"ms":"banana"}`), 400],
      ["ms a numeric string", post(`{"ms":"5"}`), 400],
      ["ms missing", post(`{}`), 400],
      ["ms null", post(`{"ms":null}`), 400],
      ["ms negative", post(`{"ms":-1}`), 400],
      ["ms a fraction", post(`{"ms":1.5}`), 400],
      ["ms above the limit", post(`{"ms":600001}`), 400],
      ["ms 1e15", post(`{"ms":1e15}`), 400],
      ["an array", post(`[{"ms":5}]`), 400],
      ["a number", post(`5`), 400],
      ["null", post(`null`), 400],
      ["ms=", request(demo.port, { path: "/work?ms=" }), 400],
      ["ms=%20", request(demo.port, { path: "/work?ms=%20" }), 400],
      ["ms=0x10", request(demo.port, { path: "/work?ms=0x10" }), 400],
      ["ms=1e3", request(demo.port, { path: "/work?ms=1e3" }), 400],
      ["ms=-1", request(demo.port, { path: "/work?ms=-1" }), 400],
      ["ms=1.5", request(demo.port, { path: "/work?ms=1.5" }), 400],
      ["ms above the limit", request(demo.port, { path: "/work?ms=60001" }), 400],
      ["ms twice", request(demo.port, { path: "/work?ms=1&ms=2" }), 400],
      ["DELETE /jobs", request(demo.port, { method: "DELETE", path: "/jobs" }), 405, "GET, HEAD, POST"],
      ["PUT /work", request(demo.port, { method: "PUT", path: "/work" }), 405, "GET, HEAD"],
      ["POST /jobs/<id>", request(demo.port, { method: "POST", path: "/jobs/abc", body: "{}" }), 405, "GET, HEAD"],
      ["POST /readyz", request(demo.port, { method: "POST", path: "/readyz" }), 405, "GET, HEAD"],
      ["unknown path", request(demo.port, { path: "/nope" }), 404],
      ["unknown nested path", request(demo.port, { path: "/jobs/a/b" }), 404],
      ["a very long path", request(demo.port, { path: `/${"x".repeat(5000)}` }), 404],
      ["unknown job", request(demo.port, { path: "/jobs/nope" }), 404],
      ["a job id that is too long", request(demo.port, { path: `/jobs/${"x".repeat(500)}` }), 404]
    ]
    const answers = await Promise.all(refusals.map(([, answer]) => answer))
    refusals.forEach(([name, , status, allow], i) => {
      const answer = answers[i]!
      assert.strictEqual(answer.status, status, `${name}: ${answer.status} ${answer.text}`)
      assert.strictEqual(answer.headers["content-type"], "application/json", name)
      assert.isString(answer.json?.error, `${name}: ${answer.text}`)
      assert.notInclude(answer.json.error, "\n", name)
      assert.isBelow(answer.json.error.length, 200, name)
      if (allow !== undefined) assert.strictEqual(answer.headers.allow, allow, name)
    })
    assert.strictEqual(answers[0]!.json.error, "body larger than 16384 bytes")
    assert.strictEqual(answers[6]!.json.error, `body is not {"ms": <whole number from 0 to 600000>}: ms: Expected number`)

    // Good requests still work, and only they were accepted.
    const good = await postJob(demo.port, 5)
    assert.strictEqual(good.status, 202, good.text)
    assert.deepStrictEqual((await request(demo.port, { path: "/work?ms=0" })).json, { worked: 0 })
    assert.deepStrictEqual((await request(demo.port, { path: "/work" })).json, { worked: 100 })
    assert.strictEqual((await request(demo.port, { method: "HEAD", path: "/jobs" })).status, 200)
    const counts = (await request(demo.port, { path: "/jobs" })).json
    assert.strictEqual(counts.pending + counts.running + counts.done, 1, JSON.stringify(counts))

    // Node ends the slow request after the request timeout, with 408, and closes the socket.
    const { reply } = await slow
    assert.match(reply, /^HTTP\/1\.1 408 /)
    assert.strictEqual((await request(demo.port, { path: "/readyz" })).status, 200)
    const exit = await stopDemo(demo)
    assert.strictEqual(exit.code, 0, exit.output)
    const accepted = fs.readFileSync(path.join(dataDir, "journal.jsonl"), "utf8").split("\n").filter((l) => l.includes(`"accepted"`))
    assert.deepStrictEqual(accepted.map((l) => JSON.parse(l).id), [good.json.id])
  }, 180_000)
})

describe.concurrent("corrupted journals, a full disk, SIGKILL", () => {
  it("a journal with every kind of damage: good jobs run, bad lines are skipped with one warning line each (by line number) and never run", async ({ onTestFinished }) => {
    const { startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-corrupt")
    const file = path.join(dataDir, "journal.jsonl")
    const damaged = Buffer.concat([
      Buffer.from(accepted("good1", 20)), //                                    1
      Buffer.from([0xff, 0xfe, 0x7b, 0x0a]), //                                  2: not UTF-8
      Buffer.from(`{"t":"accepted","id":"banana","ms":"banana","at":1}\n`), // 3
      Buffer.from(`{"t":"accepted","id":"nomss","at":1}\n`), //                   4
      Buffer.from(`{"t":"accepted","id":"forever","ms":1e15,"at":1}\n`), //      5
      Buffer.from(`{"t":"teleported","id":"good1"}\n`), //                       6
      Buffer.from("garbage \u001b[2J\n"), //                                      7
      Buffer.from(`{"t":"accepted","id":"cut","ms":2\n`), //                     8: a line cut short, in the middle
      Buffer.from(`{"t":"acc{"t":"accepted","id":"glued","ms":20,"at":2}\n`), // 9: glued after a torn write
      Buffer.from(accepted("good2", 20)) //                                    10
    ])
    const torn = Buffer.concat([Buffer.from(`{"t":"completed","id":"good1","result":"caf`), Buffer.from([0xc3])]) // in a 2-byte character
    fs.writeFileSync(file, Buffer.concat([damaged, torn]))
    const first = await startDemo(dataDir)
    for (const id of ["good1", "good2", "glued"]) {
      await until(async () => (await request(first.port, { path: `/jobs/${id}` })).json?.state === "done")
    }
    for (const id of ["banana", "nomss", "forever", "cut"]) {
      assert.strictEqual((await request(first.port, { path: `/jobs/${id}` })).status, 404, id)
    }
    const warnings = lines(first.child.output()).filter((l) => l.includes("journal:"))
    for (const [n, why] of [[2, "not valid UTF-8"], [3, "ms: Expected number"], [4, "ms: Missing key"], [5, "ms: expected a whole number"], [6, "unknown entry type"], [7, "not JSON"], [8, "not JSON"]] as const) {
      assert.isTrue(warnings.some((w) => w.includes(`skipped line ${n} (${why}`)), `line ${n}: ${warnings.join("\n")}`)
    }
    assert.isTrue(warnings.some((w) => w.includes("line 9: recovered the entry")), warnings.join("\n"))
    assert.isTrue(warnings.some((w) => w.includes(`cut a torn last line of ${torn.length} bytes`)), warnings.join("\n"))
    assert.notInclude(first.child.output(), "\u001b[2J", "a control sequence from the journal reached the log")
    assert.strictEqual((await stopDemo(first)).code, 0)
    // The next start finds the same bad lines, and nothing new.
    const second = await startDemo(dataDir)
    const again = lines(second.child.output()).filter((l) => l.includes("journal:"))
    assert.strictEqual(again.length, 8, again.join("\n"))
    assert.isFalse(again.some((w) => w.includes("cut a torn last line")), again.join("\n"))
    await stopDemo(second)
  }, 180_000)

  it("a full disk (writes failing with EFBIG past a file size limit): jobs are refused with 503 and one JSON line, the service stays up, and every job acknowledged before is found after a restart", async ({ onTestFinished }) => {
    const { spawnDemoWithFileLimit, startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-full")
    const file = path.join(dataDir, "journal.jsonl")
    const old = Array.from({ length: 300 }, (_, i) => `${accepted(`old${i}`, 0)}{"t":"completed","id":"old${i}","result":"worked 0 ms","at":2}\n`)
    fs.writeFileSync(file, old.join(""))
    // Room for a few more lines, then the "disk" is full.
    const limit = Math.ceil((fs.statSync(file).size + 700) / 512) * 512
    const { full, port } = await inStartSlot(async () => {
      const full = spawnDemoWithFileLimit(limit, { PORT: "0", DATA_DIR: dataDir, WORKERS: "1" })
      return { full, port: await listeningPort(full) }
    })
    const acked: Array<string> = []
    const refused: Array<string> = []
    for (let i = 0; i < 40 && refused.length < 5; i++) {
      const answer = await postJob(port, 10)
      if (answer.status === 202) acked.push(answer.json.id)
      else {
        assert.strictEqual(answer.status, 503, answer.text)
        assert.strictEqual(answer.headers["retry-after"], "5")
        assert.match(answer.json.error, /^not accepted: journal .*: write failed \(EFBIG\): not recorded$/)
        refused.push(answer.json.error)
      }
    }
    assert.isAbove(acked.length, 0, "nothing fitted before the limit")
    assert.strictEqual(refused.length, 5)
    assert.strictEqual((await request(port, { path: "/livez" })).status, 200)
    const stopped = await stopDemo({ child: full, port, base: "" })
    assert.strictEqual(stopped.code, 0, stopped.output)
    assert.isAtMost(fs.statSync(file).size, limit)
    // No line was left half written: every line is whole JSON.
    for (const line of fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "")) JSON.parse(line)
    const after = await startDemo(dataDir)
    assert.notInclude(after.child.output(), "journal:", "the journal needed repairs")
    for (const id of acked) assert.strictEqual((await request(after.port, { path: `/jobs/${id}` })).status, 200, id)
    await stopDemo(after)
  }, 180_000)

  it("SIGKILL at random moments while jobs arrive: after a restart, every acknowledged job is found, then done", async ({ onTestFinished }) => {
    const { startDemo } = session(onTestFinished)
    const dataDir = tempDir("faults-kill")
    const acked: Array<string> = []
    const moments: Array<number> = []
    for (let cycle = 0; cycle < 3; cycle++) {
      const demo = await startDemo(dataDir)
      // The restart took over the lock a SIGKILL left behind, and found no damage.
      if (cycle > 0) assert.notInclude(demo.child.output(), "journal:", demo.child.output())
      const exited = demo.child.exited
      const submitting = submitUntil(demo.port, exited, 300)
      const moment = 200 + Math.floor(Math.random() * 1200)
      moments.push(moment)
      await new Promise((r) => setTimeout(r, moment))
      demo.child.signal("SIGKILL")
      await exited
      acked.push(...(await submitting))
      assert.isTrue(fs.existsSync(path.join(dataDir, "instance.lock")))
    }
    const last = await startDemo(dataDir)
    const context = `SIGKILL at ${moments.join(", ")} ms`
    assert.isAbove(acked.length, 5, context)
    for (const id of acked) {
      const answer = await request(last.port, { path: `/jobs/${id}` })
      assert.strictEqual(answer.status, 200, `${context}: ${id} acknowledged, then lost`)
    }
    await until(async () => {
      const counts = (await request(last.port, { path: "/jobs" })).json
      return counts.pending === 0 && counts.running === 0
    }, 120_000)
    for (const id of acked) assert.strictEqual((await request(last.port, { path: `/jobs/${id}` })).json.state, "done", id)
    assert.strictEqual((await stopDemo(last)).code, 0)
  }, 180_000)
})
