/**
 * The demo's fault matrix, run against real processes.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { holdPort, lines, postJob, request, session, stopDemo, tempDir } from "../support/demo.ts"

const racer = path.join(import.meta.dirname, "..", "fixtures", "demo_lock_racer.ts")

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

describe("torn and corrupted journals", () => {
  for (
    const [name, head, runsOfA, badLine] of [
      ["the issue's bytes (a pending job A)", accepted("A", 5), 1, 2],
      ["a finished job A, so the acknowledged job is the first line appended", `${accepted("A", 5)}{"t":"completed","id":"A","result":"x","at":2}\n`, 0, 3]
    ] as const
  ) {
    it(`issue 12 #1, ${name}: a torn last line after invalid UTF-8 is cut by bytes; nothing appended after the repair is lost`, async () => {
      const { startDemo } = session()
      const dataDir = tempDir("faults-torn")
      const file = path.join(dataDir, "journal.jsonl")
      fs.writeFileSync(file, Buffer.concat([Buffer.from(head), Buffer.from([0xc3, 0x28, 0x0a]), Buffer.from(`{"t":"accepted","id":"T","ms":50`)]))
      const first = await startDemo(dataDir)
      const posted = await postJob(first.port, 10)
      assert.strictEqual(posted.status, 202, posted.text)
      const exit = await stopDemo(first)
      assert.strictEqual(exit.code, 0, exit.output)
      const second = await startDemo(dataDir)
      const found = await request(second.port, { path: `/jobs/${posted.json.id}` })
      assert.strictEqual(found.status, 200, `${found.text}\n${second.child.output()}`)
      const a = await request(second.port, { path: "/jobs/A" })
      assert.strictEqual(a.json.state, "done", a.text)
      assert.strictEqual(a.json.runs, runsOfA, a.text)
      // The second start sees only the line that was always bad.
      const warnings = lines(second.child.output()).filter((l) => l.includes("journal:"))
      assert.strictEqual(warnings.length, 1, warnings.join("\n"))
      assert.include(warnings[0], `skipped line ${badLine} (not valid UTF-8)`)
      await stopDemo(second)
    }, 90_000)
  }
})

describe("one instance per data directory", () => {
  it("issue 12 #2: a second instance on the same data directory refuses with one line naming it and the holder's pid (exit 75), taking no job", async () => {
    const { spawnDemo, startDemo } = session()
    const dataDir = tempDir("faults-second")
    const first = await startDemo(dataDir, { WORKERS: "1" })
    // One job runs (long), two wait in the journal: a second instance must not take them.
    for (let i = 0; i < 3; i++) assert.strictEqual((await postJob(first.port, 60_000)).status, 202)
    const journal = path.join(dataDir, "journal.jsonl")
    await until(async () => (await request(first.port, { path: "/jobs" })).json.running === 1)
    const before = fs.readFileSync(journal)
    const second = await spawnDemo({ PORT: "0", DATA_DIR: dataDir }).exited
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
  }, 90_000)

  it("issue 12 #2: starters racing to take over a stale lock (its holder was killed): exactly one wins", async () => {
    const { spawn } = session()
    // Two rounds at once, each in its own directory, four starters each.
    await Promise.all([0, 1].map(async () => {
      const dataDir = tempDir("faults-race")
      fs.writeFileSync(path.join(dataDir, "instance.lock"), `holder ${deadPid()} 00dead00 -\n`)
      const startAt = String(Date.now() + 4_000)
      const racers = Array.from({ length: 4 }, () => spawn(racer, { env: { DATA_DIR: dataDir, START_AT: startAt } }))
      const said = await Promise.all(racers.map((r) => r.waitFor(/^(held|refused) \d+/m, 30_000)))
      const winners = said.filter((l) => l.startsWith("held"))
      assert.strictEqual(winners.length, 1, said.join("\n"))
      const winner = winners[0]!.split(" ")[1]
      for (const line of said) if (line.startsWith("refused")) assert.strictEqual(line, `refused ${winner}`)
      for (const r of racers) if (String(r.pid) === winner) r.signal("SIGTERM")
      await Promise.all(racers.map((r) => r.exited))
      assert.isFalse(fs.existsSync(path.join(dataDir, "instance.lock")))
    }))
  }, 90_000)

  it("issue 12 #2: a port in use refuses with one line naming the variable and the port (exit 75), before taking any job", async () => {
    const { spawnDemo } = session()
    const held = await holdPort()
    try {
      for (const variable of ["PORT", "HEALTH_PORT"]) {
        const dataDir = tempDir("faults-port")
        const journal = path.join(dataDir, "journal.jsonl")
        fs.writeFileSync(journal, accepted("waiting", 10))
        const env = variable === "PORT" ? { PORT: String(held.port) } : { PORT: "0", HEALTH_PORT: String(held.port) }
        const exit = await spawnDemo({ DATA_DIR: dataDir, ...env }).exited
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
  }, 90_000)
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

describe("hostile requests", () => {
  it("issue 12 #6: bodies, queries, methods and paths the API does not accept are refused with a clear status and a one-line JSON error; nothing is accepted by mistake", async () => {
    const { startDemo } = session()
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
  }, 90_000)
})
