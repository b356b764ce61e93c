/**
 * Ports, checked before the service starts: a port in use, a port this user
 * may not open, or a HOST that is not an address of this machine stops the
 * demo with one line naming the variable, before it takes any job. The real
 * listen happens a moment later (a race with another process in between is
 * reported by {@link refusal} the same way).
 */
import { Effect } from "effect"
import * as net from "node:net"
import { Refusal, show } from "./Refusal.ts"

const codeOf = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code ?? String(e)

/** The refusal for a failed listen on `host:port`, set by `variable` (PORT or HEALTH_PORT). */
export const refusal = (variable: string, host: string, port: number, error: unknown): Refusal => {
  const code = codeOf(error)
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`
  switch (code) {
    case "EADDRINUSE":
      return new Refusal({ reason: "inUse", message: `${show(variable, String(port))}: ${where} is in use by another process (EADDRINUSE)` })
    case "EACCES":
      return new Refusal({
        reason: "setting",
        message: `${show(variable, String(port))}: not allowed to listen on ${where} (EACCES: ports below 1024 need privileges)`
      })
    case "EADDRNOTAVAIL":
      return new Refusal({ reason: "setting", message: `${show("HOST", host)}: not an address of this machine (EADDRNOTAVAIL)` })
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
      return new Refusal({ reason: "setting", message: `${show("HOST", host)}: cannot resolve it (${code})` })
    default:
      return new Refusal({ reason: "setting", message: `${show(variable, String(port))}: cannot listen on ${where} (${code})` })
  }
}

/** Bind `host:port` for an instant and let go (with port 0, this checks the HOST). */
export const probe = (variable: string, host: string, port: number): Effect.Effect<void, Refusal> =>
  Effect.callback<void, Refusal>((resume) => {
    const server = net.createServer()
    server.once("error", (e) => resume(Effect.fail(refusal(variable, host, port, e))))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resume(Effect.void)))
  })
