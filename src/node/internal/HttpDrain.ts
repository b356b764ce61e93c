/**
 * Connection drain engine for Node HTTP servers (HTTP/1.1, HTTPS, HTTP/2,
 * upgraded connections), in plain TypeScript with no Effect inside.
 *
 * Why it exists: on Node >= 19 `http.Server.close()` calls
 * `closeIdleConnections()`, which destroys every socket that has no request in
 * flight *as Node sees it*. A keep-alive client may have just written its next
 * request on such a socket; the bytes are in the kernel buffer, Node has not
 * parsed them yet, and the client gets ECONNRESET / "socket hang up". Without
 * that call (Effect's NodeHttpServer before this), keep-alive sockets linger
 * until `keepAliveTimeout`.
 *
 * How the race is avoided, in phases:
 * 1. `beginClosing`: every HTTP/1.x response whose head is not yet sent gets
 *    `Connection: close`, so Node itself ends the socket right after it, and
 *    the client never reuses it. HTTP/2 sessions get a GOAWAY.
 * 2. `stopAccepting`: only the listening handle is closed
 *    (`net.Server.prototype.close`, not `http.Server.close`), and a keep-alive
 *    socket is closed only once it has been idle for `idleGraceMs`, counted from
 *    its last activity. A client that reuses a socket does it right away, so a
 *    socket quiet for the grace is very unlikely to carry a request in flight,
 *    and a request that does arrive within the grace is answered with
 *    `Connection: close`. Bytes count as activity, not only parsed requests:
 *    a socket that received bytes since its last exchange ended has a request
 *    arriving (a head in pieces, a slow client) and is not idle; it is served
 *    once its head is complete, or destroyed with the rest at the deadline.
 *    This is read from `socket.bytesRead` (public, kept by the stream handle
 *    even while Node's HTTP parser consumes it natively), so nothing is added
 *    to the socket: a `data` listener would switch Node's parser from native
 *    consumption to JavaScript for every byte the server ever reads.
 * 3. `drain`: waits until every tracked socket, session and request is gone.
 * 4. `destroyAll`: destroys what is left once the budget is spent.
 *
 * Only public Node APIs and events are used: no private fields, no patched
 * prototypes, so it works for any server handed over (Express, Fastify, Koa...).
 *
 * @since 0.1.0
 */
import type * as http2 from "node:http2"
import type * as http from "node:http"
import type * as https from "node:https"
import * as net from "node:net"
import type * as stream from "node:stream"
import * as tls from "node:tls"

/**
 * Defaults of {@link HttpDrainOptions}, in one place.
 *
 * @since 0.1.0
 * @category models
 */
export const defaults = {
  idleGraceMs: 150,
  connectionClose: true,
  /** After an idle socket is ended (FIN), time before it is destroyed if the peer does not close. */
  endTimeoutMs: 1_000
} as const

/**
 * Options of {@link adopt}.
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpDrainOptions {
  /**
   * Default 150. Once idle-closing starts (`stopAccepting`), a keep-alive
   * socket idle for at least this long is closed at once; a socket used more
   * recently gets the rest of the grace, and a request arriving in it is served
   * with `Connection: close`. A socket that has received bytes of a request
   * not yet complete is not idle: it is served, or destroyed at the deadline.
   */
  readonly idleGraceMs?: number
  /**
   * Default true. From `beginClosing()` on, every HTTP/1.x response whose head
   * is not yet sent carries `Connection: close`, so Node ends the socket after
   * it. With false, sockets are only closed by the idle-grace rule.
   */
  readonly connectionClose?: boolean
  /**
   * Called once per upgraded connection (WebSocket, CONNECT tunnel) when
   * closing begins, or just after the upgrade if it happens while closing.
   * Use it to send a WebSocket close 1001 ("going away"); drain then waits for
   * the socket to close.
   */
  readonly onUpgradedClose?: (socket: stream.Duplex, request: http.IncomingMessage) => void
}

/**
 * Counts for reports and progress lines.
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpDrainStats {
  /** Tracked connections: HTTP/1.x, HTTP/2 and upgraded (TLS handshakes in progress excluded). */
  readonly connections: number
  /** Requests whose response has not finished or closed yet (HTTP/1.x and HTTP/2 compat API). */
  readonly activeRequests: number
  /** HTTP/1.x keep-alive connections with no request in flight. */
  readonly idle: number
  /** Connections handed over by an `upgrade` or `connect` event. */
  readonly upgraded: number
  /** HTTP/2 sessions not closed yet. */
  readonly sessions: number
  /** Responses that finished after `beginClosing`. */
  readonly servedWhileClosing: number
  /** Idle keep-alive sockets ended by the idle-grace rule. */
  readonly endedIdle: number
}

/**
 * The drain engine of one server, driven phase by phase.
 *
 * @since 0.1.0
 * @category models
 */
export interface HttpDrain {
  /**
   * Phase 1 (at the signal): mark closing. Responses not yet started get
   * `Connection: close` (Node then ends their socket after the response),
   * HTTP/2 sessions get a GOAWAY, and `onUpgradedClose` runs for upgraded
   * connections. Idempotent.
   */
  readonly beginClosing: () => void
  /**
   * Phase 2: close the listening handle only (no `closeIdleConnections`) and
   * start closing idle keep-alive sockets by the idle-grace rule. Calls
   * `beginClosing` if needed. Resolves once the listener is closed.
   */
  readonly stopAccepting: () => Promise<void>
  /**
   * Phase 3: resolves true once every tracked connection, session and request
   * has finished, false if `timeoutMs` elapsed first.
   */
  readonly drain: (timeoutMs?: number) => Promise<boolean>
  /** Phase 4: destroy every remaining socket and session. Returns how many were destroyed. */
  readonly destroyAll: () => number
  /** Upgraded connections still open, with the request that upgraded them. */
  readonly upgradedSockets: () => ReadonlyArray<{ readonly socket: stream.Duplex; readonly request: http.IncomingMessage }>
  /** Counts for reports and progress lines. */
  readonly stats: () => HttpDrainStats
  /** Remove every listener and timer added by `adopt` (for tests and teardown). */
  readonly dispose: () => void
}

/**
 * A server `adopt` can drain.
 *
 * @since 0.1.0
 * @category models
 */
export type DrainableServer = http.Server | https.Server | http2.Http2SecureServer | http2.Http2Server

interface Conn {
  readonly socket: net.Socket
  active: number
  lastActivity: number
  /**
   * `socket.bytesRead` when its last exchange ended (accept, or a response
   * closed with its request read whole): more than this, with no request in
   * flight, means the next request is arriving.
   */
  bytesSeen: number
  upgraded: boolean
  request: http.IncomingMessage | undefined
  /** The response in flight on this socket, to add `Connection: close` to at `beginClosing`. */
  current: http.ServerResponse | undefined
  /** The response we last gave `Connection: close`. */
  closeOn: http.ServerResponse | undefined
  /** The socket closed: its requests were counted out (see `onClose`). */
  gone: boolean
  hooked: boolean
  h2: boolean
  endTimer: ReturnType<typeof setTimeout> | undefined
  readonly onClose: () => void
}

interface RawTls {
  readonly acceptedAt: number
  readonly onClose: () => void
}

type Listener = (...args: Array<any>) => void

const now = (): number => performance.now()

/**
 * Start tracking the connections of `server`. Call it before the server
 * accepts connections (right after creating it): connections accepted earlier
 * are not tracked.
 *
 * @since 0.1.0
 * @category constructors
 */
export const adopt = (server: DrainableServer, options: HttpDrainOptions = {}): HttpDrain => {
  const idleGraceMs = Math.max(0, options.idleGraceMs ?? defaults.idleGraceMs)
  const connectionClose = options.connectionClose ?? defaults.connectionClose
  const onUpgradedClose = options.onUpgradedClose
  const srv = server as unknown as net.Server
  const isTls = server instanceof tls.Server

  const conns = new Map<net.Socket, Conn>()
  /** Raw TCP sockets of a TLS server (handshake in progress or wrapped by a tracked TLS socket). */
  const rawTls = new Map<net.Socket, RawTls>()
  const sessions = new Map<http2.Http2Session, () => void>()
  let activeRequests = 0
  let servedWhileClosing = 0
  let endedIdle = 0
  let closing = false
  let idleClosing = false
  let disposed = false
  let sweepTimer: ReturnType<typeof setTimeout> | undefined
  let sweepAt = Infinity
  /** Connection being set up by the server's own listener, to link an HTTP/2 session to it. */
  let pending: Conn | undefined
  const waiters = new Set<(drained: boolean) => void>()
  const serverListeners: Array<[string, Listener]> = []

  const on = (event: string, listener: Listener, prepend = false) => {
    if (prepend) srv.prependListener(event, listener)
    else srv.on(event, listener)
    serverListeners.push([event, listener])
  }

  const isDrained = () =>
    conns.size === 0 && rawTls.size === 0 && sessions.size === 0 && activeRequests === 0

  const check = () => {
    if (waiters.size === 0 || !isDrained()) return
    for (const w of [...waiters]) w(true)
  }

  // ---- connections -------------------------------------------------------

  const track = (socket: net.Socket) => {
    if (disposed || conns.has(socket)) return
    const conn: Conn = {
      socket,
      active: 0,
      lastActivity: now(),
      bytesSeen: socket.bytesRead,
      upgraded: false,
      request: undefined,
      current: undefined,
      closeOn: undefined,
      gone: false,
      hooked: false,
      h2: false,
      endTimer: undefined,
      onClose: () => {
        if (conn.endTimer !== undefined) clearTimeout(conn.endTimer)
        conns.delete(socket)
        if (pending === conn) pending = undefined
        // A response that never got the socket (queued behind one that closed
        // it: pipelining) never emits 'close': count its request out here.
        conn.gone = true
        activeRequests -= conn.active
        conn.active = 0
        check()
      }
    }
    conns.set(socket, conn)
    socket.once("close", conn.onClose)
    pending = conn
    // A connection accepted while idle-closing is swept after its grace too.
    if (idleClosing) scheduleSweep(idleGraceMs)
  }

  const trackRawTls = (socket: net.Socket) => {
    if (disposed || rawTls.has(socket)) return
    const onClose = () => {
      rawTls.delete(socket)
      check()
    }
    rawTls.set(socket, { acceptedAt: now(), onClose })
    socket.once("close", onClose)
    if (idleClosing) scheduleSweep(idleGraceMs)
  }

  /**
   * End an idle HTTP/1.x socket with a FIN. It no longer counts for the
   * drain: nothing more will be served on it, and waiting for each client's
   * own FIN would only delay the exit. It is destroyed if the peer does not
   * close in time.
   */
  const closeIdle = (conn: Conn) => {
    const socket = conn.socket
    if (socket.destroyed) return
    socket.end()
    conn.endTimer = setTimeout(() => socket.destroy(), defaults.endTimeoutMs)
    conn.endTimer.unref()
    conns.delete(socket)
    endedIdle++
    check()
  }

  const isIdleH1 = (conn: Conn) =>
    !conn.h2 && !conn.upgraded && conn.active === 0 && !conn.socket.destroyed && !conn.socket.writableEnded

  /**
   * Milliseconds until `conn` has been idle for the grace: 0 or less means
   * close it now, Infinity means it is not idle (in use, or a request is
   * arriving: its head in pieces, a slow client). Such a request is served
   * once its head is complete (its response then carries Connection: close),
   * or destroyed at the deadline; whatever ends it (a response, the rest of a
   * body, the socket) sweeps again.
   */
  const idleIn = (conn: Conn, t: number): number => {
    if (!isIdleH1(conn) || conn.socket.bytesRead > conn.bytesSeen) return Infinity
    return idleGraceMs - (t - conn.lastActivity)
  }

  /**
   * A TLS connection that has not sent a byte (not even its ClientHello) is
   * idle since it was accepted; one whose handshake is under way is kept.
   */
  const rawIdleIn = (socket: net.Socket, raw: RawTls, t: number): number =>
    socket.bytesRead > 0 || socket.destroyed ? Infinity : idleGraceMs - (t - raw.acceptedAt)

  const sweep = () => {
    sweepTimer = undefined
    sweepAt = Infinity
    if (!idleClosing || disposed) return
    const t = now()
    let next = Infinity
    const due: Array<Conn> = []
    const dueRaw: Array<net.Socket> = []
    for (const conn of conns.values()) {
      const left = idleIn(conn, t)
      if (left <= 0) due.push(conn)
      else next = Math.min(next, left)
    }
    for (const [socket, raw] of rawTls) {
      const left = rawIdleIn(socket, raw, t)
      if (left <= 0) dueRaw.push(socket)
      else next = Math.min(next, left)
    }
    if (due.length > 0 || dueRaw.length > 0) setImmediate(closeDue, due, dueRaw)
    if (next !== Infinity) scheduleSweep(next)
  }

  /**
   * Close what the sweep found idle, after the event loop's next poll phase.
   * Timers run before I/O: after the loop was busy (a long task, a GC pause,
   * CPU throttling) past the grace, a request may be waiting unread in the
   * kernel while the sweep sees a quiet socket. By the check phase it has been
   * read (a request in flight, or bytes of one), and the socket is kept.
   */
  const closeDue = (due: ReadonlyArray<Conn>, dueRaw: ReadonlyArray<net.Socket>) => {
    if (!idleClosing || disposed) return
    const t = now()
    let next = Infinity
    for (const conn of due) {
      if (conns.get(conn.socket) !== conn) continue
      const left = idleIn(conn, t)
      if (left <= 0) closeIdle(conn)
      else next = Math.min(next, left)
    }
    for (const socket of dueRaw) {
      const raw = rawTls.get(socket)
      if (raw === undefined) continue
      const left = rawIdleIn(socket, raw, t)
      if (left <= 0) closeSilentRaw(socket, raw)
      else next = Math.min(next, left)
    }
    if (next !== Infinity) scheduleSweep(next)
  }

  /** Close a raw TLS socket that never sent a byte: there is nothing to answer on it. */
  const closeSilentRaw = (socket: net.Socket, raw: RawTls) => {
    socket.off("close", raw.onClose)
    rawTls.delete(socket)
    socket.destroy()
    endedIdle++
    check()
  }

  const scheduleSweep = (inMs: number) => {
    if (!idleClosing || disposed) return
    const at = now() + inMs
    if (sweepTimer !== undefined && sweepAt <= at) return
    if (sweepTimer !== undefined) clearTimeout(sweepTimer)
    sweepAt = at
    // +1: timers may fire a fraction of a millisecond early relative to performance.now()
    sweepTimer = setTimeout(sweep, Math.ceil(inMs) + 1)
    sweepTimer.unref()
  }

  // ---- HTTP/2 sessions ---------------------------------------------------

  const onSession = (session: http2.Http2Session) => {
    if (disposed) return
    // The server's own connection listener creates the session synchronously,
    // right after our prepended connection listener ran for the same socket.
    if (pending !== undefined) {
      pending.h2 = true
      pending = undefined
    }
    const onClose = () => {
      sessions.delete(session)
      check()
    }
    sessions.set(session, onClose)
    session.once("close", onClose)
    if (closing) closeSession(session)
  }

  const closeSession = (session: http2.Http2Session) => {
    if (session.closed || session.destroyed) return
    try {
      session.close()
    } catch {
      // already closing
    }
  }

  // ---- requests ----------------------------------------------------------

  // The per-request path: it runs for every request of the server's life, not
  // only during shutdown, so it does the least it can. One 'close' listener
  // per response (Node emits 'close' after 'finish', and for aborted ones),
  // no removal, one timestamp, one read of the socket's byte count.
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (disposed) return
    activeRequests++
    const h1 = req.httpVersionMajor < 2
    const conn = h1 ? conns.get(req.socket) : undefined
    if (conn !== undefined) {
      conn.active++
      if (closing && connectionClose && !res.headersSent) markClose(conn, res)
      conn.current = res
    }
    res.on("close", () => {
      if (conn === undefined) activeRequests--
      else {
        // Already counted out if its socket closed first (see onClose).
        if (conn.gone) return
        activeRequests--
        conn.active--
        if (conn.current === res) conn.current = undefined
        exchangeEnded(conn, req)
      }
      if (closing || waiters.size > 0) settled(conn)
    })
  }

  /**
   * A response closed: the exchange ends now, or, if its request body is still
   * coming in (answered early; Node then reads and drops the rest), when the
   * body ends. Bytes past that point belong to the next request.
   */
  const exchangeEnded = (conn: Conn, req: http.IncomingMessage) => {
    conn.lastActivity = now()
    if (req.complete) {
      conn.bytesSeen = conn.socket.bytesRead
      return
    }
    req.once("end", () => {
      if (conn.gone || conn.active > 0) return
      conn.lastActivity = now()
      conn.bytesSeen = conn.socket.bytesRead
      if (idleClosing) scheduleSweep(idleGraceMs)
    })
  }

  /**
   * Put `Connection: close` on `res`, the newest response of `conn`. If an
   * older response still carries ours with its head unsent, the client
   * pipelined this request behind it: Node would end the socket after that
   * older response and never answer this one, so the close moves here.
   */
  const markClose = (conn: Conn, res: http.ServerResponse) => {
    const older = conn.closeOn
    if (older !== undefined && older !== res && !older.headersSent && older.getHeader("connection") === "close") {
      // back to what Node would have sent (a client that asked for close keeps it)
      if (older.shouldKeepAlive) older.setHeader("connection", "keep-alive")
    }
    conn.closeOn = res
    res.setHeader("connection", "close")
  }

  /** A response ended while closing: count it, give its socket the idle grace, maybe finish the drain. */
  const settled = (conn: Conn | undefined) => {
    if (closing) servedWhileClosing++
    // With `Connection: close` Node has already ended the socket (its own
    // 'finish' listener runs before our 'close'). Otherwise the response's
    // head went out as keep-alive before closing began, and the client may
    // reuse the socket the moment the response ends: it gets the idle grace
    // like any keep-alive socket. Ending it right here would race that reuse
    // (a pooled client then sees "socket hang up"; the behaviour suite has
    // the case), and a request already on the wire cannot be seen from here.
    if (conn !== undefined && conn.active === 0 && isIdleH1(conn)) scheduleSweep(idleGraceMs)
    check()
  }

  // ---- upgrades ----------------------------------------------------------

  const hookUpgraded = (conn: Conn) => {
    if (conn.hooked || onUpgradedClose === undefined || conn.request === undefined) return
    conn.hooked = true
    const request = conn.request
    try {
      onUpgradedClose(conn.socket, request)
    } catch {
      // a failing hook must not break the shutdown; destroyAll still applies
    }
  }

  const onUpgrade = (req: http.IncomingMessage, socket: stream.Duplex) => {
    if (disposed) return
    let conn = conns.get(socket as net.Socket)
    if (conn === undefined) {
      track(socket as net.Socket)
      conn = conns.get(socket as net.Socket)
      if (conn === undefined) return
    }
    conn.upgraded = true
    conn.request = req
    conn.lastActivity = now()
    if (closing) {
      // Let the user's upgrade listener complete the handshake first.
      const c = conn
      setImmediate(() => {
        if (!c.socket.destroyed) hookUpgraded(c)
      })
    }
  }

  // Node hands the socket over on 'upgrade' / 'connect' only when a listener
  // exists; a listener of ours alone would swallow such requests. So ours is
  // attached only while the user has one.
  const upgradeEvents = ["upgrade", "connect"] as const
  const attached = new Set<string>()
  const syncUpgradeListener = (event: string) => {
    const others = srv.listeners(event).filter((l) => l !== onUpgrade).length
    if (others > 0 && !attached.has(event)) {
      attached.add(event)
      srv.prependListener(event, onUpgrade)
    } else if (others === 0 && attached.has(event)) {
      attached.delete(event)
      srv.off(event, onUpgrade)
    }
  }
  const onNewListener = (event: string | symbol, listener: Listener) => {
    if (disposed || listener === onUpgrade) return
    if (event === "upgrade" || event === "connect") {
      // 'newListener' fires before the listener is added
      queueMicrotask(() => {
        if (!disposed) syncUpgradeListener(event)
      })
    }
  }
  const onRemoveListener = (event: string | symbol, listener: Listener) => {
    if (disposed || listener === onUpgrade) return
    if (event === "upgrade" || event === "connect") syncUpgradeListener(event)
  }

  // ---- wiring ------------------------------------------------------------

  if (isTls) {
    on("connection", trackRawTls)
    on("secureConnection", track, true)
  } else {
    on("connection", track, true)
  }
  on("session", onSession)
  on("request", onRequest, true)
  on("newListener", onNewListener)
  on("removeListener", onRemoveListener)
  for (const event of upgradeEvents) syncUpgradeListener(event)

  // ---- phases ------------------------------------------------------------

  const beginClosing = () => {
    if (closing || disposed) return
    closing = true
    if (connectionClose) {
      for (const conn of conns.values()) {
        if (conn.current !== undefined && !conn.current.headersSent) markClose(conn, conn.current)
      }
    }
    for (const session of sessions.keys()) closeSession(session)
    for (const conn of conns.values()) if (conn.upgraded) hookUpgraded(conn)
  }

  const stopAccepting = async (): Promise<void> => {
    // All in one tick, listener first: a client told "Connection: close" or
    // whose idle socket is ended reconnects only after this tick, and finds
    // the port closed (ECONNREFUSED) rather than a queued connection that the
    // closing listener would reset.
    if (!disposed && srv.listening) {
      // The listening handle only: http.Server#close would also run the racy
      // closeIdleConnections(). The handle is closed synchronously; the 'close'
      // event itself waits for every connection, so it is not awaited here.
      net.Server.prototype.close.call(srv)
    }
    beginClosing()
    if (disposed) return
    if (!idleClosing) {
      idleClosing = true
      sweep()
    }
  }

  const drain = (timeoutMs = Infinity): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      if (isDrained()) return resolve(true)
      let timer: ReturnType<typeof setTimeout> | undefined = undefined
      const done = (drained: boolean) => {
        if (timer !== undefined) clearTimeout(timer)
        waiters.delete(done)
        resolve(drained)
      }
      waiters.add(done)
      // Kept referenced on purpose: a pending drain must keep the process alive.
      // Without a finite timeout the caller bounds the wait (the Shutdown's
      // step deadline) and the open sockets keep the process alive.
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done(false), Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)))
    })

  const destroyAll = (): number => {
    let n = 0
    for (const session of [...sessions.keys()]) {
      if (!session.destroyed) {
        session.destroy()
        n++
      }
    }
    for (const conn of [...conns.values()]) {
      if (!conn.socket.destroyed) {
        conn.socket.destroy()
        if (!conn.h2) n++ // an HTTP/2 socket was counted with its session
      }
    }
    for (const socket of [...rawTls.keys()]) {
      if (!socket.destroyed) socket.destroy()
    }
    return n
  }

  const upgradedSockets = () => {
    const out: Array<{ socket: stream.Duplex; request: http.IncomingMessage }> = []
    for (const conn of conns.values()) {
      if (conn.upgraded && conn.request !== undefined) out.push({ socket: conn.socket, request: conn.request })
    }
    return out
  }

  const stats = (): HttpDrainStats => {
    let idle = 0
    let upgraded = 0
    for (const conn of conns.values()) {
      if (conn.upgraded) upgraded++
      else if (!conn.h2 && conn.active === 0) idle++
    }
    return {
      connections: conns.size,
      activeRequests,
      idle,
      upgraded,
      sessions: sessions.size,
      servedWhileClosing,
      endedIdle
    }
  }

  const dispose = () => {
    if (disposed) return
    disposed = true
    if (sweepTimer !== undefined) clearTimeout(sweepTimer)
    sweepTimer = undefined
    for (const [event, listener] of serverListeners) srv.off(event, listener)
    for (const event of attached) srv.off(event, onUpgrade)
    attached.clear()
    for (const conn of conns.values()) {
      conn.socket.off("close", conn.onClose)
      if (conn.endTimer !== undefined) clearTimeout(conn.endTimer)
    }
    for (const [socket, raw] of rawTls) socket.off("close", raw.onClose)
    for (const [session, onClose] of sessions) session.off("close", onClose)
    conns.clear()
    rawTls.clear()
    sessions.clear()
    pending = undefined
    // Nothing is tracked any more: pending drains cannot tell, they resolve false.
    for (const w of [...waiters]) w(false)
  }

  return { beginClosing, stopAccepting, drain, destroyAll, upgradedSockets, stats, dispose }
}
