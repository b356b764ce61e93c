/**
 * Behaviour suite of the HTTP drain engine, ported (as behaviours, in our own
 * code) from the tests of http-terminator, stoppable, terminus and Node's own
 * `test/parallel/test-http-server-close-*.js`, plus the cases of issue 12
 * item 7: requests whose head arrives in pieces, connections that send
 * nothing, slow clients, pipelining, half-closing clients.
 *
 * Every server and socket listens on / connects to 127.0.0.1 with a free
 * port and is closed when the test ends, also when it fails. Waits have
 * generous limits and no assertion depends on two events landing within a few
 * milliseconds of each other: only orderings the protocol guarantees, and
 * "still open after N × the grace" where the engine must keep a socket.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as http2 from "node:http2"
import * as https from "node:https"
import * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import * as tls from "node:tls"
import { describe, expect, it, onTestFinished } from "vitest"
import { adopt, defaults, type HttpDrainOptions } from "../../src/node/internal/HttpDrain.ts"
import { host, listen } from "../support/http.ts"

const key = fs.readFileSync(new URL("../fixtures/tls/localhost-key.pem", import.meta.url))
const cert = fs.readFileSync(new URL("../fixtures/tls/localhost-cert.pem", import.meta.url))

/** The most any single wait may take: the machine is shared and often loaded. */
const patience = 10_000
const grace = defaults.idleGraceMs

type Scheme = "http" | "https"
const schemes: ReadonlyArray<Scheme> = ["http", "https"]

const deferred = <A = void>() => {
  let resolve!: (a: A) => void
  const promise = new Promise<A>((r) => (resolve = r))
  return { promise, resolve }
}

/** Polls `condition` every 10 ms until it holds; rejects after `patience`. */
const eventually = async (condition: () => boolean, what: string) => {
  const until = performance.now() + patience
  while (!condition()) {
    if (performance.now() > until) throw new Error(`not true within ${patience} ms: ${what}`)
    await sleep(10)
  }
}

const GET = (path = "/", extra = "") => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`

/** Response heads found in what a raw client received, in order. */
const heads = (text: string) =>
  [...text.matchAll(/HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n/g)].map((m) => ({
    status: Number(m[1]),
    connection: /^connection: *([^\r\n]*)$/im.exec(m[2]!)?.[1]?.trim().toLowerCase()
  }))

/** A client socket that records what it receives and whether the server ended it. */
class RawClient {
  text = ""
  error: Error | undefined = undefined
  /** The server's FIN arrived, or the connection closed. */
  ended = false
  readonly endedP: Promise<void>
  readonly closedP: Promise<void>
  private readonly checks = new Set<() => void>()

  constructor(readonly socket: net.Socket) {
    socket.setEncoding("latin1")
    socket.on("data", (c: string) => {
      this.text += c
      this.wake()
    })
    socket.on("error", (e) => (this.error = e))
    const ended = deferred()
    const closed = deferred()
    const end = () => {
      this.ended = true
      this.wake()
      ended.resolve()
    }
    socket.once("end", end)
    socket.once("close", () => {
      end()
      closed.resolve()
    })
    this.endedP = ended.promise
    this.closedP = closed.promise
  }

  private wake() {
    for (const check of [...this.checks]) check()
  }

  write(data: string) {
    if (!this.socket.destroyed) this.socket.write(data)
  }

  /** Resolves once `done` holds for what was received; rejects if the connection ends first, or after `ms`. */
  until(done: (text: string) => boolean, what: string, ms = patience): Promise<string> {
    return new Promise((resolve, reject) => {
      const describe = () => `received ${JSON.stringify(this.text)}${this.error ? ` (${this.error.message})` : ""}`
      const timer = setTimeout(() => {
        stop()
        reject(new Error(`no ${what} within ${ms} ms; ${describe()}`))
      }, ms)
      const stop = () => {
        clearTimeout(timer)
        this.checks.delete(check)
      }
      const check = () => {
        if (done(this.text)) {
          stop()
          resolve(this.text)
        } else if (this.ended) {
          stop()
          reject(new Error(`connection ended before ${what}; ${describe()}`))
        }
      }
      this.checks.add(check)
      check()
    })
  }

  /** Whether the connection is still open `ms` from now. */
  async openAfter(ms: number): Promise<boolean> {
    await Promise.race([this.endedP, sleep(ms)])
    return !this.ended
  }
}

interface Reply {
  readonly status?: number
  readonly connection?: string
  readonly body?: string
  readonly reused?: boolean
  readonly error?: NodeJS.ErrnoException
}

/**
 * A server of `scheme` under the engine, listening on a free port, torn down
 * (every socket, agent and timer of the test included) when the test ends.
 */
const rig = async (scheme: Scheme, handler: http.RequestListener, options: HttpDrainOptions = {}) => {
  const server: http.Server = scheme === "http" ? http.createServer(handler) : https.createServer({ key, cert }, handler)
  // Node's own keep-alive timer must never be what closes a socket here.
  server.keepAliveTimeout = 60_000
  const drain = adopt(server, options)
  const sockets = new Set<net.Socket>()
  const agents = new Set<http.Agent>()
  const timers = new Set<ReturnType<typeof setInterval>>()
  onTestFinished(() => {
    for (const t of timers) clearInterval(t)
    for (const s of sockets) s.destroy()
    for (const a of agents) a.destroy()
    drain.destroyAll()
    drain.dispose()
    if (server.listening) server.close()
    server.closeAllConnections()
  })
  const port = await listen(server)

  /** A raw client; `tcp` connects without TLS even to an HTTPS server. */
  const raw = (over: Scheme | "tcp" = scheme): RawClient => {
    const socket = over === "https"
      ? tls.connect({ host, port, rejectUnauthorized: false })
      : net.connect(port, host)
    sockets.add(socket)
    return new RawClient(socket)
  }

  const agent = (): http.Agent => {
    const a = scheme === "http"
      ? new http.Agent({ keepAlive: true, maxSockets: 50 })
      : new https.Agent({ keepAlive: true, maxSockets: 50, rejectUnauthorized: false })
    agents.add(a)
    return a
  }

  const request = (
    path: string,
    opts: { readonly agent?: http.Agent | false; readonly method?: string; readonly headers?: http.OutgoingHttpHeaders } = {}
  ): Promise<Reply> =>
    new Promise((resolve) => {
      const fail = (error: NodeJS.ErrnoException) => resolve({ error })
      const req = (scheme === "http" ? http : https).request(
        { host, port, path, method: opts.method ?? "GET", agent: opts.agent ?? false, headers: opts.headers ?? {}, rejectUnauthorized: false },
        (res) => {
          let body = ""
          res.setEncoding("utf8")
          res.on("data", (c: string) => (body += c))
          res.once("error", fail)
          res.once("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              connection: String(res.headers.connection ?? ""),
              body,
              reused: req.reusedSocket
            }))
        }
      )
      req.once("error", fail)
      req.once("socket", (s) => sockets.add(s))
      req.end()
    })

  /** Resolves at the next connection the server accepts (the raw TCP one, for HTTPS too). */
  const nextConnection = () => new Promise<void>((resolve) => server.once("connection", () => resolve()))

  /** Both closing phases, as `NodeHttpDrain` runs them without a pre-stop delay. */
  const closing = async () => {
    drain.beginClosing()
    await drain.stopAccepting()
  }

  const every = (ms: number, f: () => void) => {
    const t = setInterval(f, ms)
    timers.add(t)
    return () => {
      clearInterval(t)
      timers.delete(t)
    }
  }

  /**
   * Resolves once `n` connections are tracked (for HTTPS: handshake done), so
   * that none is still in the kernel's accept queue when the listener closes.
   */
  const tracked = (n: number) => eventually(() => drain.stats().connections === n, `${n} connections tracked`)

  return { server, drain, port, raw, agent, request, nextConnection, tracked, closing, every }
}

/** How a plain TCP connection attempt to `port` ends: "connected" or the error code. */
const tryConnect = (port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect(port, host)
    s.once("connect", () => {
      s.destroy()
      resolve("connected")
    })
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })

/** A request listener that parks every request until the test releases it. */
const parked = () => {
  const waiting: Array<{ req: http.IncomingMessage; res: http.ServerResponse }> = []
  const arrivals = new Set<() => void>()
  const handler: http.RequestListener = (req, res) => {
    waiting.push({ req, res })
    for (const a of [...arrivals]) a()
  }
  /** Resolves once `n` requests have arrived in total. */
  const arrived = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (waiting.length >= n) {
          arrivals.delete(check)
          resolve()
        }
      }
      arrivals.add(check)
      check()
    })
  return { handler, waiting, arrived }
}

for (const scheme of schemes) {
  describe(`${scheme}: from http-terminator`, () => {
    it("with no connections, stopAccepting closes the listener and the drain resolves at once", async () => {
      const r = await rig(scheme, (_req, res) => res.end("ok"))
      expect(r.server.listening).toBe(true)
      await r.closing()
      expect(r.server.listening).toBe(false)
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a request that is never answered holds the drain until its deadline; destroyAll then closes it", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET())
      await p.arrived(1)
      await r.closing()
      expect(await r.drain.drain(300)).toBe(false)
      expect(r.drain.stats()).toMatchObject({ connections: 1, activeRequests: 1 })
      expect(r.drain.destroyAll()).toBe(1)
      await c.closedP
      expect(heads(c.text)).toEqual([])
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("after stopAccepting a new connection is refused, and the request in flight still gets its body with Connection: close", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const inFlight = r.request("/slow", { agent: r.agent() })
      await p.arrived(1)
      await r.closing()
      expect(await tryConnect(r.port)).toBe("ECONNREFUSED")
      p.waiting[0]!.res.end("foo")
      expect(await inFlight).toMatchObject({ status: 200, body: "foo", connection: "close" })
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a response whose head is not sent when closing begins carries Connection: close, and its socket is closed right after it", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET())
      await p.arrived(1)
      r.drain.beginClosing()
      p.waiting[0]!.res.end("foo")
      await c.until((t) => t.endsWith("foo"), "the response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
      // Node ends the socket itself after a Connection: close response: no grace, no stopAccepting needed
      await c.endedP
    })

    it("a keep-alive socket reused after closing began: the response whose head went out before stays keep-alive, the next one gets Connection: close", async () => {
      const p = parked()
      // a long grace: the reuse must land in it even if this loaded machine stalls the test for a while
      const r = await rig(scheme, p.handler, { idleGraceMs: 2_000 })
      const c = r.raw()
      c.write(GET("/first"))
      await p.arrived(1)
      p.waiting[0]!.res.write("foo") // head sent now, before closing
      await c.until((t) => t.includes("foo"), "the first head")
      await r.closing()
      p.waiting[0]!.res.end("bar")
      await c.until((t) => t.includes("bar"), "the end of the first response")
      c.write(GET("/second"))
      await p.arrived(2)
      p.waiting[1]!.res.end("baz")
      await c.until((t) => t.endsWith("baz"), "the second response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "keep-alive" }, { status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("no Connection: close while not closing", async () => {
      const r = await rig(scheme, (_req, res) => void setTimeout(() => res.end("foo"), 20))
      const agent = r.agent()
      expect(await r.request("/", { agent })).toMatchObject({ status: 200, connection: "keep-alive" })
      expect(await r.request("/", { agent })).toMatchObject({ status: 200, connection: "keep-alive", reused: true })
    })
  })

  describe(`${scheme}: from stoppable`, () => {
    it("idle keep-alive sockets are closed by the server and the drain resolves; new connections are refused", async () => {
      const r = await rig(scheme, (_req, res) => res.end("hello"))
      const clients = [r.raw(), r.raw(), r.raw()]
      for (const c of clients) c.write(GET())
      for (const c of clients) await c.until((t) => t.endsWith("hello"), "the response")
      await r.closing()
      await Promise.all(clients.map((c) => c.endedP))
      expect(await r.drain.drain(patience)).toBe(true)
      expect(await tryConnect(r.port)).toBe("ECONNREFUSED")
      expect(r.drain.stats()).toMatchObject({ connections: 0, endedIdle: 3 })
    })

    it("a client that asked for Connection: close leaves nothing to drain", async () => {
      const r = await rig(scheme, (_req, res) => res.end("hello"))
      expect(await r.request("/", { agent: r.agent(), headers: { connection: "close" } })).toMatchObject({
        status: 200,
        connection: "close"
      })
      await r.closing()
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("requests in flight whose heads went out before closing finish with their whole body, then their sockets close", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const clients = [r.raw(), r.raw()]
      for (const c of clients) c.write(GET())
      await p.arrived(2)
      for (const { res } of p.waiting) {
        res.writeHead(200)
        res.write("hello")
      }
      for (const c of clients) await c.until((t) => t.includes("hello"), "the head")
      await r.closing()
      const drained = r.drain.drain(patience)
      for (const { res } of p.waiting) setTimeout(() => res.end("world"), 100)
      for (const c of clients) {
        await c.until((t) => /world\r\n0\r\n\r\n$/.test(t), "the whole (chunked) body")
        // closed by the server a grace after its response at most, nowhere near keepAliveTimeout (60 s)
        await c.endedP
      }
      expect(await drained).toBe(true)
    })

    it("responses that never finish are cut at the deadline: drain is false, destroyAll closes them", async () => {
      const r = await rig(scheme, (_req, res) => {
        res.writeHead(200)
        res.write("hi")
      })
      const clients = [r.raw(), r.raw()]
      for (const c of clients) c.write(GET())
      for (const c of clients) await c.until((t) => t.includes("hi"), "the head")
      await r.closing()
      expect(await r.drain.drain(500)).toBe(false)
      expect(r.drain.destroyAll()).toBe(2)
      await Promise.all(clients.map((c) => c.closedP))
      expect(await r.drain.drain(patience)).toBe(true)
    })
  })

  describe(`${scheme}: from terminus`, () => {
    it("during a pre-stop delay (closing begun, listener open) new connections are served with Connection: close, and nothing is reset", async () => {
      const r = await rig(scheme, (_req, res) => void setTimeout(() => res.end("ok"), 10))
      const agent = r.agent()
      const replies: Array<Reply & { sentAfterClosing: boolean }> = []
      let closingBegun = false
      let stop = false
      const loop = async () => {
        for (let i = 0; i < 500 && !stop; i++) {
          const sentAfterClosing = closingBegun
          replies.push({ ...(await r.request("/", { agent })), sentAfterClosing })
        }
      }
      const loops = Array.from({ length: 5 }, loop)
      await sleep(200)
      r.drain.beginClosing()
      closingBegun = true
      await sleep(300)
      stop = true
      await Promise.all(loops)
      expect(replies.filter((x) => x.error !== undefined)).toEqual([])
      const after = replies.filter((x) => x.sentAfterClosing)
      expect(after.length).toBeGreaterThan(0)
      expect(after.every((x) => x.status === 200 && x.connection === "close")).toBe(true)
      await r.drain.stopAccepting()
      expect(await tryConnect(r.port)).toBe("ECONNREFUSED")
      expect(await r.drain.drain(patience)).toBe(true)
    })
  })

  describe(`${scheme}: from Node's server.close tests`, () => {
    it("an idle keep-alive connection is closed, one whose head is incomplete is kept and its request answered once complete", async () => {
      const r = await rig(scheme, (_req, res) => res.end("done"))
      const incomplete = r.raw()
      incomplete.write("GET / HTTP/1.1")
      const idle = r.raw()
      idle.write(GET())
      await idle.until((t) => t.endsWith("done"), "the response")
      await r.tracked(2)
      await r.closing()
      await idle.endedP
      expect(await incomplete.openAfter(4 * grace)).toBe(true)
      incomplete.write(`\r\nHost: ${host}\r\n\r\n`)
      await incomplete.until((t) => t.endsWith("done"), "the response to the completed head")
      expect(heads(incomplete.text)).toEqual([{ status: 200, connection: "close" }])
      await incomplete.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("destroyAll closes idle and incomplete connections alike", async () => {
      const r = await rig(scheme, (_req, res) => res.end("done"))
      const incomplete = r.raw()
      incomplete.write("GET / HTTP/1.1")
      const idle = r.raw()
      idle.write(GET())
      await idle.until((t) => t.endsWith("done"), "the response")
      await r.tracked(2)
      expect(r.drain.destroyAll()).toBe(2)
      await Promise.all([incomplete.closedP, idle.closedP])
      expect(await r.drain.drain(patience)).toBe(true)
    })
  })

  describe(`${scheme}: bytes received count as activity (issue 12 item 7)`, () => {
    it("a head split across the signal (100 ms before, 90 ms after) is answered with Connection: close", async () => {
      const r = await rig(scheme, (_req, res) => res.end("split ok"))
      const c = r.raw()
      await r.tracked(1)
      c.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n`)
      await sleep(100)
      await r.closing()
      await sleep(90)
      c.write("\r\n")
      await c.until((t) => t.endsWith("split ok"), "the response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a head whose pieces arrive further apart than the grace is still answered", async () => {
      const r = await rig(scheme, (_req, res) => res.end("slow head ok"))
      const c = r.raw()
      await r.tracked(1)
      c.write("GET / HT")
      await sleep(2 * grace)
      await r.closing()
      await sleep(3 * grace)
      c.write(`TP/1.1\r\nHost: ${host}\r\n`)
      await sleep(3 * grace)
      c.write("\r\n")
      await c.until((t) => t.endsWith("slow head ok"), "the response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a connection that never sends a byte is closed at the grace", async () => {
      // a long grace, so that "accepted a moment ago" below holds on a loaded machine
      const r = await rig(scheme, (_req, res) => res.end("ok"), { idleGraceMs: 1_000 })
      const accepted = r.nextConnection()
      // plain TCP even for HTTPS: not even a TLS ClientHello
      const c = r.raw("tcp")
      await accepted
      await r.closing()
      // accepted a moment ago: it gets the rest of its grace first
      if (scheme === "http") expect(r.drain.stats().connections).toBe(1)
      await c.endedP
      expect(c.text).toBe("")
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a slow client (slowloris) is kept until the deadline, then destroyAll ends it", async () => {
      const r = await rig(scheme, (_req, res) => res.end("never"))
      const c = r.raw()
      c.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n`)
      let n = 0
      const stop = r.every(50, () => c.write(`X-Slow-${n++}: 1\r\n`))
      await r.tracked(1)
      await r.closing()
      expect(await r.drain.drain(6 * grace)).toBe(false)
      expect(r.drain.destroyAll()).toBeGreaterThanOrEqual(1)
      stop()
      await c.closedP
      expect(heads(c.text)).toEqual([])
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a slow body upload in progress completes and is answered", async () => {
      const r = await rig(scheme, (req, res) => {
        let n = 0
        req.on("data", (chunk: Buffer) => (n += chunk.length))
        req.on("end", () => res.end(`received ${n}`))
      })
      const c = r.raw()
      c.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000\r\n\r\n`)
      c.write("x".repeat(100))
      await eventually(() => r.drain.stats().activeRequests === 1, "the upload under way")
      await r.closing()
      for (let i = 0; i < 9; i++) {
        await sleep(2 * grace / 3)
        c.write("x".repeat(100))
      }
      await c.until((t) => t.endsWith("received 1000"), "the response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("an upload answered before its body ended: the socket stays while the body arrives, then closes a grace after it, without holding the drain", async () => {
      const r = await rig(scheme, (_req, res) => res.end("early"))
      const c = r.raw()
      c.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000\r\n\r\n`)
      c.write("x".repeat(100))
      await c.until((t) => t.endsWith("early"), "the early response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "keep-alive" }])
      await r.closing()
      for (let i = 0; i < 9; i++) {
        await sleep(2 * grace / 3)
        // the server must not have closed the socket while the body is still coming in
        expect(c.ended).toBe(false)
        c.write("x".repeat(100))
      }
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a client that half-closes after its request: Node ends the socket at its FIN, and the drain is not held by it", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET())
      await p.arrived(1)
      c.socket.end() // FIN: the client sends nothing more
      await r.closing()
      // Node's default (httpAllowHalfOpen false) answers a client FIN with its own
      await c.endedP
      p.waiting[0]!.res.end("too late")
      expect(await r.drain.drain(patience)).toBe(true)
    })

    // Plain TCP only: over TLS, Node closes the server side at the client's close_notify even with httpAllowHalfOpen.
    if (scheme === "http") {
      it("with Node's httpAllowHalfOpen, a client that half-closes after its request still gets the whole response", async () => {
        const p = parked()
        const r = await rig(scheme, p.handler)
        // Node's own switch (set in its Server constructor, not in the typings): keep answering after a client FIN
        expect((r.server as unknown as { httpAllowHalfOpen: unknown }).httpAllowHalfOpen).toBe(false)
        ;(r.server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
        const c = r.raw()
        c.write(GET())
        await p.arrived(1)
        c.socket.end()
        await r.closing()
        await sleep(2 * grace)
        p.waiting[0]!.res.end("after half-close")
        await c.closedP
        expect(c.text.endsWith("after half-close")).toBe(true)
        expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
        expect(await r.drain.drain(patience)).toBe(true)
      })
    }
  })

  describe(`${scheme}: an event loop busy past the grace`, () => {
    it("a request that reached the server while its event loop was busy past the grace is served, not cut", async () => {
      const r = await rig(scheme, (_req, res) => res.end("served"))
      const c = r.raw()
      c.write(GET())
      await c.until((t) => t.endsWith("served"), "the first response")
      await r.closing() // the socket was used a moment ago: it gets the rest of its grace
      c.write(GET()) // written to the kernel at once; the server reads it at its next poll
      // Block this process (server and client alike) past the grace, like a
      // long task, a GC pause or CPU throttling would: when it resumes, the
      // sweep's timer and the request's bytes are both ready, timers first.
      const resume = performance.now() + 3 * grace
      while (performance.now() < resume) {
        // busy
      }
      await c.until((t) => heads(t).length === 2 && t.endsWith("served"), "the second response")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "keep-alive" }, { status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })
  })

  describe(`${scheme}: pipelining`, () => {
    it("two requests pipelined before closing are both answered in order, the last with Connection: close", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET("/a") + GET("/b"))
      await p.arrived(2)
      await r.closing()
      for (const { req, res } of p.waiting) setTimeout(() => res.end(`<${req.url}>`), 50)
      await c.until((t) => t.includes("</a>") && t.includes("</b>"), "both responses")
      expect(c.text.indexOf("</a>")).toBeLessThan(c.text.indexOf("</b>"))
      expect(heads(c.text)).toEqual([{ status: 200, connection: "keep-alive" }, { status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("a request pipelined behind a response marked Connection: close is answered too, and only the last response closes", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET("/a"))
      await p.arrived(1)
      await r.closing() // /a's response is now due to carry Connection: close
      c.write(GET("/b")) // the client pipelines before it has seen any of it
      await p.arrived(2)
      for (const { req, res } of p.waiting) res.end(`<${req.url}>`)
      await c.until((t) => t.includes("</a>") && t.includes("</b>"), "both responses")
      expect(heads(c.text)).toEqual([{ status: 200, connection: "keep-alive" }, { status: 200, connection: "close" }])
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })
    it("a request left unanswered behind a response that closed the connection does not hold the drain", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET("/a"))
      await p.arrived(1)
      const a = p.waiting[0]!.res
      a.setHeader("connection", "close") // the application's own choice
      a.write("a-head") // head sent: Node ends the socket after /a, whatever is queued behind it
      await c.until((t) => t.includes("a-head"), "the head of /a")
      c.write(GET("/b"))
      await p.arrived(2)
      await r.closing()
      a.end()
      await c.closedP
      expect(heads(c.text)).toEqual([{ status: 200, connection: "close" }])
      // /b's response never got the socket, so Node never emits its 'close'
      expect(await r.drain.drain(patience)).toBe(true)
      expect(r.drain.stats().activeRequests).toBe(0)
    })
  })

  describe(`${scheme}: a response whose head went out before closing (issue 12 item 7, second part)`, () => {
    it("clients that reuse the socket right after such a response are answered with Connection: close, never reset", async () => {
      const streams: Array<http.ServerResponse> = []
      const headsSent = deferred()
      const n = 20
      // a long grace: what is tested is the reuse right after the response, not the grace's length
      const r = await rig(scheme, (req, res) => {
        if (req.url !== "/stream") return void res.end("next")
        res.writeHead(200, { "content-type": "text/plain" })
        res.write("start ")
        streams.push(res)
        if (streams.length === n) headsSent.resolve()
      }, { idleGraceMs: 2_000 })
      const agent = r.agent()
      const loops = Array.from({ length: n }, async () => {
        const first = await r.request("/stream", { agent })
        // straight away, as a pooled client does: the socket is free again
        const second = await r.request("/next", { agent })
        return { first, second }
      })
      await headsSent.promise
      await r.closing()
      for (const res of streams) res.end("end")
      const results = await Promise.all(loops)
      expect(results.filter((x) => x.first.error !== undefined || x.second.error !== undefined)).toEqual([])
      for (const { first, second } of results) {
        expect(first).toMatchObject({ status: 200, body: "start end", connection: "keep-alive" })
        expect(second).toMatchObject({ status: 200, body: "next", connection: "close", reused: true })
      }
      expect(await r.drain.drain(patience)).toBe(true)
    })

    it("left alone after such a response, the socket is closed a grace later, not at keepAliveTimeout", async () => {
      const p = parked()
      const r = await rig(scheme, p.handler)
      const c = r.raw()
      c.write(GET())
      await p.arrived(1)
      p.waiting[0]!.res.write("head")
      await c.until((t) => t.includes("head"), "the head")
      await r.closing()
      p.waiting[0]!.res.end("tail")
      await c.until((t) => t.includes("tail"), "the end of the response")
      await c.endedP
      expect(await r.drain.drain(patience)).toBe(true)
    })
  })
}

describe("HTTP/2", () => {
  const h2 = [
    { name: "h2c", make: () => http2.createServer(), url: "http" },
    { name: "h2 over TLS", make: () => http2.createSecureServer({ key, cert }), url: "https" }
  ] as const

  for (const kind of h2) {
    it(`${kind.name}: an idle session gets GOAWAY and closes, an open stream finishes, a new stream is refused`, async () => {
      const server = kind.make()
      const drain = adopt(server)
      const open: Array<http2.ServerHttp2Stream> = []
      const opened = deferred()
      server.on("stream", (stream, headers) => {
        if (headers[":path"] === "/quick") {
          stream.respond({ ":status": 200 })
          return void stream.end("quick")
        }
        open.push(stream)
        opened.resolve()
      })
      const clients: Array<http2.ClientHttp2Session> = []
      onTestFinished(() => {
        for (const c of clients) c.destroy()
        drain.destroyAll()
        drain.dispose()
        if (server.listening) server.close()
      })
      const port = await listen(server)
      const connect = () => {
        const c = http2.connect(`${kind.url}://${host}:${port}`, { rejectUnauthorized: false })
        c.on("error", () => {})
        clients.push(c)
        return c
      }
      const fetch = (c: http2.ClientHttp2Session, path: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = c.request({ ":path": path })
          let status = 0
          let body = ""
          req.on("response", (h) => (status = Number(h[":status"])))
          req.setEncoding("utf8")
          req.on("data", (x: string) => (body += x))
          req.on("end", () => resolve({ status, body }))
          req.on("error", reject)
        })

      const idle = connect()
      expect(await fetch(idle, "/quick")).toEqual({ status: 200, body: "quick" })
      const busy = connect()
      const idleGoaway = new Promise<void>((r) => idle.once("goaway", () => r()))
      const idleClosed = new Promise<void>((r) => idle.once("close", () => r()))
      const busyGoaway = new Promise<void>((r) => busy.once("goaway", () => r()))
      const slow = fetch(busy, "/slow")
      await opened.promise
      expect(drain.stats().sessions).toBe(2)

      drain.beginClosing()
      await drain.stopAccepting()
      await Promise.all([idleGoaway, busyGoaway, idleClosed])
      // after GOAWAY the client may not open a stream on this session
      const refused = await new Promise<string>((resolve) => {
        try {
          const req = busy.request({ ":path": "/quick" })
          req.on("response", () => resolve("answered"))
          req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"))
          req.on("close", () => resolve(`closed ${req.rstCode}`))
        } catch (e) {
          resolve((e as NodeJS.ErrnoException).code ?? "thrown")
        }
      })
      expect(refused).not.toBe("answered")
      open[0]!.respond({ ":status": 200 })
      open[0]!.end("slow")
      expect(await slow).toEqual({ status: 200, body: "slow" })
      expect(await drain.drain(patience)).toBe(true)
    })
  }
})
