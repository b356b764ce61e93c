/**
 * The data directory: created if missing, checked to be a directory.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { type Refusal, setting } from "./Refusal.ts"

const codeOf = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code ?? String(e)

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
