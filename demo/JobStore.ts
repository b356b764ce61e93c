/**
 * The durable record of the embedded demo: the seam between `Jobs.make` (what
 * a job is and how it runs in one process) and the journal file
 * (`Journal.ts`), plus the limits and the error every store shares.
 *
 * A store shared by several processes cannot be an append-only record that
 * one process replays: it has to say who holds a job. The PostgreSQL store
 * (`PgJobs.ts`) therefore implements `Jobs.Jobs` itself (take, run, requeue
 * as claims with a lease), not this interface.
 *
 * The entries are validated with `Schema` when read back: a store hands
 * `Jobs` only entries within the limits below, so a hand-edited or damaged
 * record can never make a worker run a job of "banana" or 10^15 ms.
 */
import { Data, Effect, Result, Schema, SchemaIssue } from "effect"

/** The documented limits, shared by the API and the store. */
export const limits = {
  /** A job's length (POST /jobs `ms`), in milliseconds: up to 10 minutes. */
  maxJobMs: 600_000,
  /** Ids the demo hands out are shorter; anything longer is not one of ours. */
  maxIdLength: 100
} as const

const Id = Schema.String.check(
  Schema.isPattern(new RegExp(`^[A-Za-z0-9_-]{1,${limits.maxIdLength}}$`), {
    message: `expected an id of 1 to ${limits.maxIdLength} letters, digits, - or _`
  })
)
const JobMs = Schema.Int.check(
  Schema.isBetween({ minimum: 0, maximum: limits.maxJobMs }, {
    message: `expected a whole number of milliseconds from 0 to ${limits.maxJobMs}`
  })
)
const Epoch = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0, { message: "expected a time in epoch milliseconds" }))
const Run = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000_000 }, { message: "expected a run number from 1" }))

/** One line of the record. */
export const Entry = Schema.Union([
  Schema.Struct({ t: Schema.Literal("accepted"), id: Id, ms: JobMs, at: Epoch }),
  Schema.Struct({ t: Schema.Literal("started"), id: Id, run: Run, progressMs: JobMs }),
  Schema.Struct({ t: Schema.Literal("checkpointed"), id: Id, progressMs: JobMs }),
  Schema.Struct({ t: Schema.Literal("completed"), id: Id, result: Schema.String, at: Epoch })
])
export type Entry = typeof Entry.Type

const entryTypes: ReadonlyArray<string> = ["accepted", "started", "checkpointed", "completed"]

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** The first problem of a schema failure, as `path: message` on one line. */
export const describeIssue = (issue: SchemaIssue.Issue): string => {
  const first = formatter(issue).issues[0]
  if (first === undefined) return "invalid"
  const where = (first.path ?? []).map(String).join(".")
  return `${where === "" ? "" : `${where}: `}${first.message}`.replace(/\s+/g, " ")
}

/** Decode one parsed JSON value as an entry, or say in one line what is wrong with it. */
export const decodeEntry = (u: unknown): { readonly entry: Entry } | { readonly problem: string } => {
  const t = typeof u === "object" && u !== null ? (u as { t?: unknown }).t : undefined
  if (typeof t !== "string" || !entryTypes.includes(t)) {
    return { problem: `unknown entry type ${JSON.stringify(t ?? null)?.slice(0, 40)}` }
  }
  const result = Schema.decodeUnknownResult(Entry)(u)
  return Result.isSuccess(result) ? { entry: result.success } : { problem: describeIssue(result.failure.issue) }
}

/** The store could not record an entry durably: nothing that depended on it was promised. */
export class JobStoreError extends Data.TaggedError("JobStoreError")<{
  readonly message: string
}> {}

export interface JobStore {
  /** What and where, for log lines: `journal /data/journal.jsonl`. */
  readonly description: string
  /** Every valid entry read at open, in order. */
  readonly entries: ReadonlyArray<Entry>
  /** What was wrong with the record at open, one line each. */
  readonly warnings: ReadonlyArray<string>
  /** Record one entry durably before succeeding. A failure means it is not recorded. */
  readonly append: (entry: Entry) => Effect.Effect<void, JobStoreError>
  /** False once the store cannot be trusted to record anything (readiness turns 503). */
  readonly healthy: () => boolean
  /** Idempotent. */
  readonly close: Effect.Effect<void>
}
