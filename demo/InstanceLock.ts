/**
 * The lock that keeps one instance per data directory: the file
 * `instance.lock`, never edited in place.
 *
 * - It is created whole and atomically (written under a temporary name, then
 *   `link`ed to its name, which fails if it exists), holding
 *   `holder <pid> <token> <start time>`.
 * - A lock whose holder is dead (no such pid, or the pid now belongs to a
 *   process started later) is taken over by appending
 *   `takeover <token of the dead holder> <pid> <token> <start time>`. The
 *   holder is found by reading the lines in order, and only the first claim
 *   against a given holder counts, so of several starters racing to take over
 *   the same stale lock exactly one wins and the others see it alive.
 * - The holder removes the file when it stops; a SIGKILL leaves it, stale.
 *
 * It works between processes of one machine (one pid namespace) on a local
 * file system; instances on several machines sharing a directory need a store
 * with its own locking (a database). Plain Node, synchronous: it runs before
 * anything else starts.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { readAll } from "./Files.ts"

export const lockName = "instance.lock"

/** A process holding (or wanting) the lock. `started` is its start time from /proc, or "-". */
export interface Identity {
  readonly pid: number
  readonly token: string
  readonly started: string
}

const unknownHolder: Identity = { pid: 0, token: "-", started: "-" }

export const codeOf = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code ?? (e instanceof Error ? e.message : String(e))

/** The start time of a process (clock ticks since boot), Linux only; "-" when unknown. */
export const startTimeOf = (pid: number): string => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "-"
  } catch {
    return "-"
  }
}

export const self = (): Identity => ({
  pid: process.pid,
  token: crypto.randomBytes(8).toString("hex"),
  started: startTimeOf(process.pid)
})

const isToken = (s: string | undefined): s is string => s !== undefined && /^[0-9a-f-]{1,64}$/.test(s)
const isPid = (s: string | undefined) => s !== undefined && /^[1-9][0-9]{0,9}$/.test(s)

/** Who holds the lock, from its content: complete lines only, first claim against each holder wins. */
export const holderOf = (content: string): Identity => {
  const lines = content.split("\n").slice(0, -1)
  let holder = unknownHolder
  lines.forEach((line, i) => {
    const f = line.split(" ")
    if (i === 0) {
      if (f.length === 4 && f[0] === "holder" && isPid(f[1]) && isToken(f[2])) {
        holder = { pid: Number(f[1]), token: f[2], started: f[3]! }
      }
      return
    }
    if (f.length === 5 && f[0] === "takeover" && f[1] === holder.token && isPid(f[2]) && isToken(f[3])) {
      holder = { pid: Number(f[2]), token: f[3], started: f[4]! }
    }
  })
  return holder
}

/** Whether `holder` still runs, as seen by `me`. */
export const isAlive = (holder: Identity, me: Identity): boolean => {
  if (holder.token === me.token) return true
  if (!(Number.isInteger(holder.pid) && holder.pid > 0)) return false
  // An earlier process with our pid (a container's pid 1): we are starting, so it is gone.
  if (holder.pid === me.pid) return false
  try {
    process.kill(holder.pid, 0)
  } catch (e) {
    if (codeOf(e) === "ESRCH") return false
    // EPERM: alive, someone else's
  }
  const started = holder.started === "-" ? "-" : startTimeOf(holder.pid)
  return started === "-" || started === holder.started
}

const readFd = (fd: number) => readAll(fd, fs.fstatSync(fd).size).toString("utf8")

/** Create the lock whole, or find it exists. */
const create = (file: string, me: Identity): boolean => {
  const temporary = `${file}.${me.pid}.${me.token}.tmp`
  const fd = fs.openSync(temporary, "wx", 0o644)
  try {
    fs.writeSync(fd, `holder ${me.pid} ${me.token} ${me.started}\n`)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  try {
    fs.linkSync(temporary, file)
    return true
  } catch (e) {
    if (codeOf(e) === "EEXIST") return false
    throw e
  } finally {
    fs.rmSync(temporary, { force: true })
  }
}

/**
 * Take the lock of `dir` for `me`, or say who holds it. Synchronous file
 * operations only; throws on I/O errors (a directory that is not writable).
 */
export const acquireSync = (dir: string, me: Identity, alive = isAlive): { readonly holder: Identity } => {
  const file = path.join(dir, lockName)
  for (let attempt = 0; attempt < 100; attempt++) {
    if (create(file, me)) return { holder: me }
    let fd: number
    try {
      // No O_CREAT: a lock released meanwhile is created whole by `create`, on the next round.
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_APPEND)
    } catch (e) {
      if (codeOf(e) === "ENOENT") continue
      throw e
    }
    try {
      const holder = holderOf(readFd(fd))
      if (alive(holder, me)) return { holder }
      // One write with O_APPEND: claims of racing starters land whole, one after the other.
      fs.writeSync(fd, `takeover ${holder.token} ${me.pid} ${me.token} ${me.started}\n`)
      fs.fsyncSync(fd)
      const after = holderOf(readFd(fd))
      if (after.token === me.token) {
        // Still the lock, not a file its holder removed while we wrote to it?
        const now = fs.statSync(file, { throwIfNoEntry: false })
        const ours = fs.fstatSync(fd)
        if (now !== undefined && now.ino === ours.ino && now.dev === ours.dev) return { holder: me }
        continue
      }
      if (alive(after, me)) return { holder: after }
    } finally {
      fs.closeSync(fd)
    }
  }
  throw new Error("the lock kept changing hands")
}

/** Temporary files left by starters killed while creating the lock. */
export const removeLeftovers = (dir: string) => {
  try {
    for (const name of fs.readdirSync(dir)) {
      const pid = /^instance\.lock\.([0-9]+)\.[0-9a-f]+\.tmp$/.exec(name)?.[1]
      if (pid === undefined) continue
      try {
        process.kill(Number(pid), 0)
      } catch (e) {
        if (codeOf(e) === "ESRCH") fs.rmSync(path.join(dir, name), { force: true })
      }
    }
  } catch {
    // tidying only
  }
}

/** Remove the lock if `me` holds it. */
export const releaseSync = (dir: string, me: Identity) => {
  const file = path.join(dir, lockName)
  try {
    if (holderOf(fs.readFileSync(file, "utf8")).token === me.token) fs.rmSync(file, { force: true })
  } catch {
    // gone already, or not ours
  }
}
