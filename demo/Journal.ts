/**
 * The demo's durable record: an append-only JSON-lines file. Every line is
 * written with one write call and fsync'd before the caller goes on, so a job
 * is acknowledged (202) only once its "accepted" line is on disk. On open, a
 * torn last line (power cut mid-write) is detected, reported and cut off, and
 * any unreadable line is skipped with a warning: the journal never stops the
 * service from starting.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"

export type Entry =
  | { readonly t: "accepted"; readonly id: string; readonly ms: number; readonly at: number }
  | { readonly t: "started"; readonly id: string; readonly run: number; readonly progressMs: number }
  | { readonly t: "checkpointed"; readonly id: string; readonly progressMs: number }
  | { readonly t: "completed"; readonly id: string; readonly result: string; readonly at: number }

export interface Journal {
  readonly file: string
  /** Everything read at open, in order. */
  readonly entries: ReadonlyArray<Entry>
  /** What was wrong with the file at open (torn or unreadable lines). */
  readonly warnings: ReadonlyArray<string>
  /** Append one entry, durably (write + fsync), before returning. */
  readonly append: (entry: Entry) => void
  readonly close: Effect.Effect<void>
}

const isEntry = (u: unknown): u is Entry =>
  typeof u === "object" && u !== null && typeof (u as any).t === "string" && typeof (u as any).id === "string"

/** Read and repair the journal in `dir` and open it for appends; `close` closes it. */
export const open = (dir: string): Effect.Effect<Journal> =>
    Effect.sync(() => {
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, "journal.jsonl")
      const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : ""
      const warnings: Array<string> = []
      const entries: Array<Entry> = []
      const end = text.lastIndexOf("\n") + 1
      if (end < text.length) {
        warnings.push(`journal: cut a torn last line of ${Buffer.byteLength(text.slice(end))} bytes (interrupted write)`)
        fs.truncateSync(file, Buffer.byteLength(text.slice(0, end)))
      }
      text.slice(0, end).split("\n").forEach((line, i) => {
        if (line.trim() === "") return
        try {
          const entry = JSON.parse(line)
          if (isEntry(entry)) return void entries.push(entry)
        } catch {
          // reported below
        }
        warnings.push(`journal: skipped unreadable line ${i + 1}: ${line.slice(0, 60)}`)
      })
      const fd = fs.openSync(file, "a")
      const append = (entry: Entry) => {
        fs.writeSync(fd, `${JSON.stringify(entry)}\n`)
        fs.fsyncSync(fd)
      }
      return { file, entries, warnings, append, close: Effect.sync(() => fs.closeSync(fd)) }
    })
