/** Running a command line to its end in a child process, with stdin given and output collected. */
import { spawn } from "node:child_process"

/** Run the command with `input` on stdin (or none: stdin closed). */
export const runCommand = (
  command: ReadonlyArray<string>,
  args: ReadonlyArray<string>,
  input: string | undefined,
  cwd: string
): Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], { cwd, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    const guard = setTimeout(() => child.kill("SIGKILL"), 25_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(guard)
      resolve({ code, stdout, stderr })
    })
    child.stdin.on("error", () => {})
    child.stdin.end(input ?? "")
  })
