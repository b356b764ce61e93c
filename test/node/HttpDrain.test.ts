/**
 * Behaviour of the HTTP drain engine against real sockets on 127.0.0.1:
 * keep-alive race at shutdown, in-flight requests, idle sockets, hung
 * requests, HTTP/2 GOAWAY and WebSocket close 1001. No timing assertions
 * beyond generous bounds; speed is measured in bench/http/keepalive-race.ts.
 */
import * as http from "node:http"
import * as http2 from "node:http2"
import * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
import { adopt, type HttpDrain } from "../../src/node/internal/HttpDrain.ts"
import { get, host, listen, type Outcome } from "../support/http.ts"

/** Force everything down at the end of a test, whatever happened. */
const teardown = (server: net.Server, drain: HttpDrain) => {
  drain.destroyAll()
  drain.dispose()
  if (server.listening) server.close()
  ;(server as http.Server).closeAllConnections?.()
}

describe("HttpDrain", () => {
  it("closed-loop keep-alive clients: no reset through shutdown, then ECONNREFUSED", async () => {
    const runs = 5
    for (let run = 0; run < runs; run++) {
      let closingSince = Infinity
      let serverSideMissingClose = 0
      const server = http.createServer((_req, res) => {
        setTimeout(() => {
          if (performance.now() >= closingSince && res.getHeader("connection") !== "close") serverSideMissingClose++
          res.end("ok")
        }, 20 + Math.random() * 30)
      })
      const drain = adopt(server)
      const port = await listen(server)
      const agent = new http.Agent({ keepAlive: true, maxSockets: 50 })
      const outcomes: Array<Outcome> = []
      const deadline = performance.now() + 10_000
      const loop = async () => {
        // bounded: stops at the first ECONNREFUSED, at the deadline, or after 2,000 requests
        for (let i = 0; i < 2_000 && performance.now() < deadline; i++) {
          const o = await get(port, agent)
          outcomes.push(o)
          if (o.error?.code === "ECONNREFUSED") return
        }
      }
      try {
        const loops = Array.from({ length: 50 }, loop)
        await sleep(500)
        closingSince = performance.now()
        drain.beginClosing()
        await drain.stopAccepting()
        const listenerClosedAt = performance.now()
        const drained = await drain.drain(10_000)
        await Promise.all(loops)

        const errors = outcomes.filter((o) => o.error !== undefined)
        const resets = errors.filter((o) => o.error!.code === "ECONNRESET" || /hang up/.test(o.error!.message))
        expect(resets).toEqual([])
        expect(errors.every((o) => o.error!.code === "ECONNREFUSED")).toBe(true)
        expect(errors.every((o) => o.doneAt >= listenerClosedAt)).toBe(true)
        // every loop ended on ECONNREFUSED, not on the bound
        expect(errors.length).toBe(50)
        const sentWhileClosing = outcomes.filter((o) => o.error === undefined && o.sentAt >= closingSince)
        expect(sentWhileClosing.every((o) => o.connection === "close")).toBe(true)
        expect(serverSideMissingClose).toBe(0)
        expect(drained).toBe(true)
        expect(drain.stats().connections).toBe(0)
        expect(drain.stats().servedWhileClosing).toBeGreaterThan(0)
      } finally {
        agent.destroy()
        teardown(server, drain)
      }
    }
  })

  it("a 2 s request in flight completes with Connection: close and drain resolves right after", async () => {
    let received!: () => void
    const gotRequest = new Promise<void>((r) => (received = r))
    const server = http.createServer((_req, res) => {
      received()
      setTimeout(() => res.end("slow"), 2_000)
    })
    const drain = adopt(server)
    const port = await listen(server)
    const agent = new http.Agent({ keepAlive: true })
    try {
      const response = get(port, agent)
      await gotRequest
      drain.beginClosing()
      await drain.stopAccepting()
      const drained = drain.drain(10_000).then((ok) => ({ ok, at: performance.now() }))
      const o = await response
      const d = await drained
      expect(o.status).toBe(200)
      expect(o.connection).toBe("close")
      expect(d.ok).toBe(true)
      // generous: "right after" the response, nowhere near keepAliveTimeout (5 s)
      expect(d.at - o.doneAt).toBeLessThan(1_000)
    } finally {
      agent.destroy()
      teardown(server, drain)
    }
  })

  it("1,000 idle keep-alive sockets close quickly, well under keepAliveTimeout", async () => {
    const server = http.createServer((_req, res) => res.end("ok"))
    server.keepAliveTimeout = 60_000
    const drain = adopt(server)
    const port = await listen(server)
    const clients: Array<net.Socket> = []
    try {
      // one request each, then idle; connect in batches to stay within the backlog
      for (let batch = 0; batch < 10; batch++) {
        await Promise.all(
          Array.from({ length: 100 }, () =>
            new Promise<void>((resolve, reject) => {
              const s = net.connect(port, host, () => s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`))
              clients.push(s)
              s.once("error", reject)
              s.once("data", () => resolve())
            })
          )
        )
      }
      const closedByServer = clients.map((s) => new Promise<void>((r) => s.once("close", () => r())))
      expect(drain.stats().idle).toBe(1_000)
      const start = performance.now()
      drain.beginClosing()
      await drain.stopAccepting()
      const drained = await drain.drain(10_000)
      const elapsed = performance.now() - start
      expect(drained).toBe(true)
      expect(elapsed).toBeLessThan(5_000)
      await Promise.all(closedByServer)
    } finally {
      for (const s of clients) s.destroy()
      teardown(server, drain)
    }
  })

  it("a keep-alive socket used within the grace is served once more with Connection: close, then closed", async () => {
    const server = http.createServer((_req, res) => res.end("ok"))
    server.keepAliveTimeout = 60_000
    // a long grace so the second request surely lands inside it
    const drain = adopt(server, { idleGraceMs: 2_000 })
    const port = await listen(server)
    const s = net.connect(port, host)
    try {
      let received = ""
      s.setEncoding("utf8")
      s.on("data", (c: string) => (received += c))
      const ended = new Promise<void>((r) => s.once("end", () => r()))
      const request = `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`
      s.write(request)
      for (let i = 0; i < 100 && !received.includes("\r\n\r\nok"); i++) await sleep(10)
      expect(received).toMatch(/keep-alive/i)
      drain.beginClosing()
      await drain.stopAccepting()
      expect(drain.stats()).toMatchObject({ connections: 1, idle: 1 })
      received = ""
      s.write(request)
      await ended
      expect(received).toMatch(/^HTTP\/1\.1 200/)
      expect(received).toMatch(/connection: close/i)
      expect(await drain.drain(5_000)).toBe(true)
    } finally {
      s.destroy()
      teardown(server, drain)
    }
  })

  it("drain returns false while a request hangs; destroyAll closes it for the client", async () => {
    let received!: () => void
    const gotRequest = new Promise<void>((r) => (received = r))
    const server = http.createServer(() => received()) // never answers
    const drain = adopt(server)
    const port = await listen(server)
    const agent = new http.Agent({ keepAlive: true })
    try {
      const response = get(port, agent)
      await gotRequest
      drain.beginClosing()
      await drain.stopAccepting()
      expect(await drain.drain(300)).toBe(false)
      expect(drain.stats()).toMatchObject({ connections: 1, activeRequests: 1 })
      expect(drain.destroyAll()).toBe(1)
      const o = await response
      expect(o.error).toBeDefined()
      expect(o.error!.code === "ECONNRESET" || /hang up/.test(o.error!.message)).toBe(true)
      expect(await drain.drain(1_000)).toBe(true)
    } finally {
      agent.destroy()
      teardown(server, drain)
    }
  })

  it("HTTP/2 (h2c): an open stream finishes after GOAWAY", async () => {
    let received!: () => void
    const gotStream = new Promise<void>((r) => (received = r))
    const server = http2.createServer()
    server.on("stream", (stream) => {
      received()
      setTimeout(() => {
        stream.respond({ ":status": 200 })
        stream.end("h2 ok")
      }, 300)
    })
    const drain = adopt(server)
    const port = await listen(server)
    const client = http2.connect(`http://${host}:${port}`)
    try {
      const goaway = new Promise<void>((r) => client.once("goaway", () => r()))
      client.on("error", () => {})
      const req = client.request({ ":path": "/" })
      const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
        let status = 0
        let body = ""
        req.on("response", (h) => (status = Number(h[":status"])))
        req.setEncoding("utf8")
        req.on("data", (c: string) => (body += c))
        req.on("end", () => resolve({ status, body }))
        req.on("error", reject)
      })
      await gotStream
      expect(drain.stats()).toMatchObject({ connections: 1, sessions: 1, idle: 0 })
      drain.beginClosing()
      await drain.stopAccepting()
      await goaway
      expect(await response).toEqual({ status: 200, body: "h2 ok" })
      expect(await drain.drain(5_000)).toBe(true)
    } finally {
      client.destroy()
      teardown(server, drain)
    }
  })

  it("WebSocket: onUpgradedClose sends 1001 and drain waits for the close", async () => {
    const server = http.createServer((_req, res) => res.end("ok"))
    const bySocket = new Map<unknown, WebSocket>()
    const drain = adopt(server, {
      onUpgradedClose: (socket) => bySocket.get(socket)?.close(1001, "server shutting down")
    })
    // the upgrade listener is added after adopt, as most apps do
    const wss = new WebSocketServer({ server })
    wss.on("connection", (ws, req) => bySocket.set(req.socket, ws))
    const port = await listen(server)
    const client = new WebSocket(`ws://${host}:${port}`)
    try {
      const closed = new Promise<{ code: number; reason: string }>((r) =>
        client.once("close", (code, reason) => r({ code, reason: reason.toString() }))
      )
      await new Promise<void>((resolve, reject) => {
        client.once("open", () => resolve())
        client.once("error", reject)
      })
      expect(drain.stats()).toMatchObject({ upgraded: 1 })
      expect(drain.upgradedSockets().length).toBe(1)
      drain.beginClosing()
      await drain.stopAccepting()
      expect(await closed).toEqual({ code: 1001, reason: "server shutting down" })
      expect(await drain.drain(5_000)).toBe(true)
    } finally {
      client.terminate()
      wss.close()
      teardown(server, drain)
    }
  })

  it("adds no upgrade listener of its own, and dispose removes every listener", () => {
    const server = http.createServer()
    const events = ["connection", "secureConnection", "request", "session", "upgrade", "connect", "newListener", "removeListener"]
    const before = events.map((e) => server.listenerCount(e))
    const drain = adopt(server)
    // Node hands over sockets on 'upgrade' only when someone listens: we must not
    expect(server.listenerCount("upgrade")).toBe(0)
    const onUpgrade = () => {}
    server.on("upgrade", onUpgrade)
    return Promise.resolve().then(() => {
      expect(server.listenerCount("upgrade")).toBe(2)
      server.off("upgrade", onUpgrade)
      expect(server.listenerCount("upgrade")).toBe(0)
      drain.dispose()
      expect(events.map((e) => server.listenerCount(e))).toEqual(before)
    })
  })
})
