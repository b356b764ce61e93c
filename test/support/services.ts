/**
 * The servers that integration tests talk to, and one way to require them.
 *
 *   const services = await requireServices(["postgres", "redis"])
 *   describe.runIf(services.ok)("...", () => { ... })
 *
 * In CI (`CI` set, as `.ci/run` does) an unreachable server fails the file
 * with a line naming the server and its address. Elsewhere the file's tests
 * are skipped, and `test/support/globalSetup.ts` prints one summary of what
 * was skipped and how to run it.
 */
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { inject } from "vitest"

export type Service = "postgres" | "redis" | "rabbitmq" | "nats"

export interface Address {
  readonly name: string
  readonly host: string
  readonly port: number
}

/** Where each server is expected (the machines' and `.ci/run`'s defaults; env overrides). */
export const addresses: Record<Service, Address> = {
  postgres: { name: "PostgreSQL", host: process.env.PGHOST ?? "127.0.0.1", port: Number(process.env.PGPORT ?? 5432) },
  redis: { name: "Redis", host: process.env.REDIS_HOST ?? "127.0.0.1", port: Number(process.env.REDIS_PORT ?? 6379) },
  rabbitmq: { name: "RabbitMQ", host: process.env.AMQP_HOST ?? "127.0.0.1", port: Number(process.env.AMQP_PORT ?? 5672) },
  nats: { name: "NATS", host: process.env.NATS_HOST ?? "127.0.0.1", port: Number(process.env.NATS_PORT ?? 4222) }
}

export const describeAddress = (service: Service) => {
  const a = addresses[service]
  return `${a.name} at ${a.host}:${a.port}`
}

/** The database the tests use (trust auth, see `.ci/run`). */
export const postgresUrl = process.env.DATABASE_URL ??
  `postgres://postgres@${addresses.postgres.host}:${addresses.postgres.port}/test`
export const redisUrl = `redis://${addresses.redis.host}:${addresses.redis.port}`

export const isCI = () => {
  const ci = process.env.CI
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false"
}

/** True when a TCP connection to the address opens within `timeoutMs`. */
export const reachable = (address: Address, timeoutMs = 2_000) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: address.host, port: address.port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

export interface Required {
  /** Every server answered: run the tests. */
  readonly ok: boolean
  readonly missing: ReadonlyArray<Service>
}

/**
 * Check that the servers answer. In CI a missing one throws (the file fails
 * with the server and its address); elsewhere the caller skips its tests and
 * the skip is recorded for the end-of-run summary.
 */
export const requireServices = async (needed: ReadonlyArray<Service>): Promise<Required> => {
  const answers = await Promise.all(needed.map((s) => reachable(addresses[s])))
  const missing = needed.filter((_, i) => !answers[i])
  if (missing.length === 0) return { ok: true, missing }
  const what = missing.map(describeAddress).join(", ")
  if (isCI()) throw new Error(`integration test needs ${what}, which is not reachable (CI is set, so this fails)`)
  recordSkip(missing)
  return { ok: false, missing }
}

declare module "vitest" {
  export interface ProvidedContext {
    readonly winddownSkipDir: string
  }
}

const recordSkip = (missing: ReadonlyArray<Service>) => {
  let dir: string | undefined
  try {
    dir = inject("winddownSkipDir")
  } catch {
    // run outside the project's vitest config: nothing collects skips
  }
  if (dir === undefined) return
  const file = callerTestFile()
  fs.writeFileSync(
    path.join(dir, `${process.pid}-${Math.random().toString(36).slice(2)}.json`),
    JSON.stringify({ file, missing })
  )
}

/** The test file that called requireServices, from the stack. */
const callerTestFile = () => {
  const line = new Error().stack?.split("\n").find((l) => /\.test\.ts/.test(l))
  const match = line && /(test\/[^:)]+\.test\.ts)/.exec(line)
  return match?.[1] ?? "an integration test"
}

/** A name no other test (or earlier run) uses: for tables, keys and queues. */
export const uniqueName = (prefix: string) =>
  `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
