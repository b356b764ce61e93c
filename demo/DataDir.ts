/**
 * The data directory: created if missing, checked to be a writable directory,
 * and locked (`InstanceLock`), so that one instance at a time runs the jobs it
 * holds: two instances on one journal would run the same jobs twice.
 */
import { Effect, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { acquireSync, codeOf, type Identity, lockName, releaseSync, removeLeftovers, self } from "./InstanceLock.ts"
import { Refusal, setting, show } from "./Refusal.ts"

const variable = "DATA_DIR"

const statOf = (file: string) => {
  try {
    return fs.statSync(file)
  } catch {
    return undefined
  }
}

/** Create `dir` if needed and check that it is a directory this process may write in; its absolute path. */
export const prepare = (dir: string): Effect.Effect<string, Refusal> =>
  Effect.suspend(() => {
    const absolute = path.resolve(dir)
    const bad = (problem: string) =>
      Effect.fail(setting(variable, dir, absolute === dir ? problem : `${absolute} ${problem}`))
    try {
      fs.mkdirSync(absolute, { recursive: true })
    } catch (e) {
      const code = codeOf(e)
      if (code === "EEXIST" || code === "ENOTDIR") {
        const stat = statOf(absolute)
        return stat !== undefined && !stat.isDirectory()
          ? bad("is a file, not a directory")
          : bad(`is under a file, not a directory (${code})`)
      }
      return bad(`cannot be created (${code})`)
    }
    if (statOf(absolute)?.isDirectory() !== true) return bad("is not a directory")
    try {
      fs.accessSync(absolute, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK)
    } catch (e) {
      return bad(`is not writable by this user (${codeOf(e)})`)
    }
    return Effect.succeed(absolute)
  })

/**
 * Lock `dir` (prepared) for this process until the scope closes. Another live
 * instance: a `Refusal` naming the directory and its pid.
 */
export const lock = (dir: string, shown = dir): Effect.Effect<void, Refusal, Scope.Scope> => {
  const me = self()
  return Effect.acquireRelease(
    Effect.suspend(() => {
      let holder: Identity
      try {
        holder = acquireSync(dir, me).holder
      } catch (e) {
        return Effect.fail(setting(variable, shown, `cannot create its lock in ${dir} (${codeOf(e)})`))
      }
      if (holder.token === me.token) return Effect.sync(() => removeLeftovers(dir))
      return Effect.fail(
        new Refusal({
          reason: "inUse",
          message: `${show(variable, shown)} is in use by another instance: pid ${holder.pid} holds ${path.join(dir, lockName)}`
        })
      )
    }),
    () => Effect.sync(() => releaseSync(dir, me))
  )
}
