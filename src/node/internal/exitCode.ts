/**
 * The exit code a shutdown decided must survive `NodeRuntime.runMain`, whose
 * default teardown calls `process.exit(130)` for any interrupted program. One
 * process-wide 'exit' listener, installed the first time a code is decided,
 * sets `process.exitCode` as the process exits; Node reads it after the
 * 'exit' listeners ran, for `process.exit(n)` and a natural exit alike.
 */
let decided: number | undefined
let installed = false

const onExit = () => {
  if (decided !== undefined) process.exitCode = decided
}

/** The code decided so far, if any. */
export const current = (): number | undefined => decided

/** Make `code` the process exit code, whatever exits the process later. */
export const decide = (code: number): void => {
  decided = code
  process.exitCode = code
  if (!installed) {
    installed = true
    process.on("exit", onExit)
  }
}

/** Leave the process now with `code`, after writing `line` synchronously to stderr. */
export const exitNow = (code: number, line: string): never => {
  decide(code)
  try {
    process.stderr.write(`${line}\n`)
  } catch {
    // stderr may be closed; exiting matters more than the line
  }
  return process.exit(code)
}
