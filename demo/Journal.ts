/**
 * The demo's job store: an append-only JSON-lines file. Every line is written
 * whole and fsync'd before the caller goes on, so a job is acknowledged (202)
 * only once its "accepted" line is on disk.
 *
 * The file is handled as bytes, never as re-decoded text: on open, a torn
 * last line (power cut mid-write) is cut at the byte offset just after the
 * last newline, so the next line appended always starts a line of its own. A
 * line that is not valid UTF-8, not JSON, or not a valid entry is skipped with
 * a warning naming its line number. A write that fails or lands only in part
 * (disk full) is rolled back to the last whole line and reported to the
 * caller: nothing is acknowledged that is not on disk, and a failed write
 * never glues the next line to leftover bytes.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { readAll } from "./Files.ts"
import { decodeEntry, type Entry, type JobStore, JobStoreError } from "./JobStore.ts"

export type { Entry } from "./JobStore.ts"

export interface Journal extends JobStore {
  readonly file: string
}

/** At most this many skipped lines are described one by one; the rest are counted. */
const maxDetailedWarnings = 20

const newline = 0x0a
const utf8 = new TextDecoder("utf-8", { fatal: true })

const codeOf = (e: unknown) =>
  typeof e === "object" && e !== null && typeof (e as { code?: unknown }).code === "string"
    ? (e as { code: string }).code
    : e instanceof Error
    ? e.message
    : String(e)

const fileError = (file: string, what: string) => new JobStoreError({ message: `journal ${file}: ${what}` })

const snippet = (bytes: Buffer) => JSON.stringify(bytes.subarray(0, 60).toString("utf8"))

/**
 * Parse one line (without its newline). A line that does not parse may be a
 * whole entry glued after the leftover bytes of an earlier torn write (a
 * journal repaired by an older version): the entry at its end is recovered.
 */
const parseLine = (bytes: Buffer): { readonly entry?: Entry; readonly problem?: string; readonly note?: string } => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return { problem: "not valid UTF-8" }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    const start = text.lastIndexOf(`{"t":`)
    if (start > 0) {
      try {
        const decoded = decodeEntry(JSON.parse(text.slice(start)))
        if ("entry" in decoded) {
          return { entry: decoded.entry, note: `recovered the entry after ${Buffer.byteLength(text.slice(0, start))} bytes of a torn write` }
        }
      } catch {
        // not recoverable either
      }
    }
    return { problem: "not JSON" }
  }
  const decoded = decodeEntry(value)
  return "entry" in decoded ? { entry: decoded.entry } : { problem: decoded.problem }
}

/**
 * Open (creating it if needed), read and repair the journal in `dir`, which
 * must exist. Fails with one line naming the file when it cannot be used.
 */
export const open = (dir: string): Effect.Effect<Journal, JobStoreError> =>
  Effect.suspend(() => {
    const file = path.resolve(dir, "journal.jsonl")
    const existed = fs.existsSync(file)
    let fd: number
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644)
    } catch (e) {
      const code = codeOf(e)
      return Effect.fail(fileError(file, code === "EISDIR" ? "is a directory, not a file" : `cannot open it for writing (${code})`))
    }
    const fail = (what: string) => {
      fs.closeSync(fd)
      return Effect.fail(fileError(file, what))
    }
    const warnings: Array<string> = []
    const entries: Array<Entry> = []
    let size: number
    try {
      const stat = fs.fstatSync(fd)
      if (!stat.isFile()) return fail("is not a regular file")
      if (!existed) {
        // The new file's name must survive a power cut too.
        const dirFd = fs.openSync(path.dirname(file), "r")
        try {
          fs.fsyncSync(dirFd)
        } finally {
          fs.closeSync(dirFd)
        }
      }
      const bytes = readAll(fd, stat.size)
      // Cut at a byte offset: the byte after the last newline.
      const end = bytes.lastIndexOf(newline) + 1
      if (end < bytes.length) {
        fs.ftruncateSync(fd, end)
        fs.fsyncSync(fd)
        warnings.push(`journal: cut a torn last line of ${bytes.length - end} bytes (interrupted write): ${snippet(bytes.subarray(end))}`)
      }
      size = end
      let skipped = 0
      let lineNumber = 0
      for (let start = 0; start < end;) {
        const stop = bytes.indexOf(newline, start)
        const line = bytes.subarray(start, stop)
        start = stop + 1
        lineNumber++
        if (line.every((b) => b === 0x20 || b === 0x09 || b === 0x0d)) continue
        const parsed = parseLine(line)
        if (parsed.entry !== undefined) entries.push(parsed.entry)
        const message = parsed.problem !== undefined
          ? `journal: skipped line ${lineNumber} (${parsed.problem}): ${snippet(line)}`
          : parsed.note !== undefined
          ? `journal: line ${lineNumber}: ${parsed.note}`
          : undefined
        if (message === undefined) continue
        if (++skipped <= maxDetailedWarnings) warnings.push(message)
      }
      if (skipped > maxDetailedWarnings) {
        warnings.push(`journal: ${skipped - maxDetailedWarnings} more lines skipped or recovered (${skipped} in all)`)
      }
    } catch (e) {
      return fail(`cannot read or repair it (${codeOf(e)})`)
    }

    let closed = false
    let broken: string | undefined
    const append = (entry: Entry): Effect.Effect<void, JobStoreError> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(fileError(file, "closed"))
        if (broken !== undefined) return Effect.fail(fileError(file, broken))
        const bytes = Buffer.from(`${JSON.stringify(entry)}\n`, "utf8")
        try {
          // A write may land in part (disk full): write the rest, which then fails.
          for (let offset = 0; offset < bytes.length;) {
            const n = fs.writeSync(fd, bytes, offset, bytes.length - offset)
            if (n <= 0) throw new Error("write made no progress")
            offset += n
          }
          fs.fsyncSync(fd)
          size += bytes.length
          return Effect.void
        } catch (e) {
          // Whatever part of the line reached the file goes, so the next line
          // starts a line of its own.
          try {
            fs.ftruncateSync(fd, size)
            fs.fsyncSync(fd)
          } catch (rollback) {
            broken = `broken: a write failed (${codeOf(e)}) and could not be rolled back (${
              codeOf(rollback)
            }); nothing more is recorded until a restart`
            return Effect.fail(fileError(file, broken))
          }
          return Effect.fail(fileError(file, `write failed (${codeOf(e)}): not recorded`))
        }
      })
    const close = Effect.sync(() => {
      if (closed) return
      closed = true
      fs.closeSync(fd)
    })
    return Effect.succeed({
      file,
      description: `journal ${file}`,
      entries,
      warnings,
      append,
      healthy: () => !closed && broken === undefined,
      close
    })
  })
