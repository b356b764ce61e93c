/**
 * Collects the integration test files that `requireServices` skipped because
 * a server was not reachable, and prints one summary at the end of the run:
 * which files, which servers, and how to run them.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { describeAddress, type Service } from "./services.ts"

export default function setup(project: TestProject) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-skips-"))
  project.provide("winddownSkipDir", dir)
  return () => {
    const skips = fs.readdirSync(dir).map((f) =>
      JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as { file: string; missing: Array<Service> }
    )
    fs.rmSync(dir, { recursive: true, force: true })
    if (skips.length === 0) return
    const files = [...new Set(skips.map((s) => s.file))].sort()
    const servers = [...new Set(skips.flatMap((s) => s.missing))].map(describeAddress)
    process.stdout.write(
      `\n[winddown] skipped ${files.length} integration test file(s) (${files.join(", ")}): not reachable: ${
        servers.join(", ")
      }. Start the servers (or run bash .ci/run, which starts them) and run npm test again; with CI=1 an unreachable server fails instead of skipping.\n`
    )
  }
}
