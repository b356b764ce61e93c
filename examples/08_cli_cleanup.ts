/**
 * 08 a CLI tool with temp-file cleanup (the seed's fourth use case): it makes
 * a temp dir and writes FILES files into it, one every 200 ms. Whether it
 * finishes by itself (reason `completed`) or is stopped by Ctrl+C, the temp
 * dir is removed by a cleanup step: no files are left behind.
 *
 * A CLI exits with the conventional 130 on Ctrl+C (`signalExit:
 * "conventional"`), so `tool && next` does not go on after an interruption;
 * a service would rather exit 0.
 *
 *   node --import tsx examples/08_cli_cleanup.ts          (press Ctrl+C halfway)
 *   FILES=3 node --import tsx examples/08_cli_cleanup.ts  (finishes by itself)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Shutdown } from "winddown"
import { NodeShutdown } from "winddown/node"

const files = Number(process.env.FILES ?? 25)

const program = Effect.gen(function*() {
  const dir = yield* Shutdown.acquireRelease(
    "remove temp dir",
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "winddown-cli-"))),
    (dir) =>
      Effect.promise(() => fs.rm(dir, { recursive: true, force: true })).pipe(
        Effect.andThen(Effect.log(`removed ${dir}`))
      )
  )
  yield* Effect.log(`pid ${process.pid}: writing ${files} files to ${dir}; stop with Ctrl+C or kill -INT ${process.pid}`)
  for (let i = 1; i <= files; i++) {
    // Uninterruptible: a signal waits for the write in progress, so no file
    // lands in the directory after the cleanup step removed it.
    yield* Effect.uninterruptible(Effect.promise(() => fs.writeFile(path.join(dir, `part-${i}.txt`), `part ${i}\n`)))
    yield* Effect.log(`wrote part-${i}.txt (${i}/${files})`)
    yield* Effect.sleep("200 millis")
  }
  yield* Effect.log("all files written")
})

NodeRuntime.runMain(
  program.pipe(Effect.provide(NodeShutdown.layer({ timeout: "5 seconds", signalExit: "conventional", reportSummary: true })))
)
