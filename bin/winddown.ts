#!/usr/bin/env -S node --import tsx
/**
 * The `winddown` command. One subcommand for now:
 *
 *   winddown timeline [FILE] [--all] [--out-dir DIR] [--width N] > shutdown.svg
 *
 * reads a log (FILE, or standard input), picks the shutdown reports out of it
 * (`ShutdownTimeline.parseReports`) and draws the last one, or all of them, as
 * SVG (`ShutdownTimeline.toSvg`). Anything wrong with the input is one line on
 * stderr and exit code 1 (2 for a wrong command line), never a stack trace.
 *
 * In this repository it runs through tsx (`node --import tsx bin/winddown.ts`);
 * `npm run build` compiles it to `build/bin/winddown.js`, the published `bin`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { ShutdownTimeline } from "winddown"

const usage = `Usage: winddown timeline [FILE] [options] > shutdown.svg

Draw a shutdown report as an SVG timeline. Reads FILE, or standard input
when FILE is missing or "-", and picks the report lines out of it: JSON
lines with "event": "winddown.report", and "[winddown] report {...}" lines
(what reportJson / WINDDOWN_REPORT_JSON=true prints). Other lines are
ignored, so a whole log can be piped in.

Options:
  --all           draw every report in the log, stacked in one SVG (first on
                  top); by default only the last report is drawn
  --out-dir DIR   write shutdown-1.svg, shutdown-2.svg ... into DIR (one
                  file per report) instead of writing to standard output
  --width N       width of the picture in pixels (default ${ShutdownTimeline.defaults.width})
  -h, --help      show this help

Examples:
  WINDDOWN_REPORT_JSON=true node main.js > service.log   (then SIGTERM it)
  winddown timeline < service.log > shutdown.svg
  winddown timeline service.log --all --out-dir shutdowns/
`

/** A problem with the input or the command line: said in one line, with its exit code. */
class Failure {
  constructor(readonly message: string, readonly code: 1 | 2) {}
}

const describeFsError = (e: unknown, file: string): string => {
  const code = (e as { code?: unknown } | null)?.code
  const why = code === "ENOENT"
    ? "no such file"
    : code === "EACCES" || code === "EPERM"
    ? "permission denied"
    : code === "EISDIR"
    ? "it is a directory"
    : e instanceof Error
    ? e.message
    : String(e)
  return `cannot read ${file}: ${why}`
}

const readInput = (file: string | undefined): string => {
  if (file === undefined || file === "-") {
    if (process.stdin.isTTY) {
      throw new Failure("no input: pipe a log in (winddown timeline < service.log) or name a file; --help for more", 2)
    }
    try {
      return fs.readFileSync(0, "utf8")
    } catch (e) {
      throw new Failure(describeFsError(e, "standard input"), 1)
    }
  }
  try {
    return fs.readFileSync(file, "utf8")
  } catch (e) {
    throw new Failure(describeFsError(e, file), 1)
  }
}

const timeline = (args: ReadonlyArray<string>): void => {
  let parsed
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        all: { type: "boolean" },
        "out-dir": { type: "string" },
        width: { type: "string" },
        help: { type: "boolean", short: "h" }
      }
    })
  } catch (e) {
    throw new Failure(`${(e instanceof Error ? e.message : String(e)).split(/\.\s|\n/)[0]}; --help for usage`, 2)
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(usage)
    return
  }
  if (positionals.length > 1) throw new Failure(`one input file at most, got ${positionals.length}; --help for usage`, 2)
  let width: number | undefined
  if (values.width !== undefined) {
    width = Number(values.width)
    if (!Number.isInteger(width) || width < 560 || width > 10_000) {
      throw new Failure(`--width must be a whole number of pixels from 560 to 10000, got ${JSON.stringify(values.width)}`, 2)
    }
  }
  const file = positionals[0]
  const source = file === undefined || file === "-" ? "standard input" : file
  const { reports, errors } = ShutdownTimeline.parseReports(readInput(file))
  const lastError = errors[errors.length - 1]
  const lastReport = reports[reports.length - 1]
  if (values.all && errors.length > 0) {
    throw new Failure(`${source}, line ${errors[0]!.line}: ${errors[0]!.message}`, 1)
  }
  if (lastError !== undefined && (lastReport === undefined || lastError.line > lastReport.line)) {
    throw new Failure(`${source}, line ${lastError.line}: ${lastError.message}`, 1)
  }
  if (lastReport === undefined) {
    throw new Failure(
      `no shutdown report in ${source}: expected a line with "event": "${ShutdownTimeline.reportEvent}" or "[winddown] report {...}" (run the service with WINDDOWN_REPORT_JSON=true)`,
      1
    )
  }
  if (errors.length > 0) {
    process.stderr.write(
      `winddown timeline: ignored ${errors.length} unreadable report line${errors.length === 1 ? "" : "s"} in ${source} (line ${
        errors[0]!.line
      }: ${errors[0]!.message})\n`
    )
  }
  const chosen = values.all ? reports : [lastReport]
  const options = width === undefined ? {} : { width }
  const outDir = values["out-dir"]
  if (outDir !== undefined) {
    try {
      fs.mkdirSync(outDir, { recursive: true })
      chosen.forEach(({ report }, i) => {
        const target = path.join(outDir, `shutdown-${i + 1}.svg`)
        fs.writeFileSync(target, ShutdownTimeline.toSvg(report, options))
        process.stdout.write(`${target}\n`)
      })
    } catch (e) {
      throw new Failure(`cannot write to ${outDir}: ${e instanceof Error ? e.message : String(e)}`, 1)
    }
    return
  }
  process.stdout.write(
    chosen.length === 1
      ? ShutdownTimeline.toSvg(chosen[0]!.report, options)
      : ShutdownTimeline.toSvgAll(chosen.map((r) => r.report), options)
  )
}

const main = (argv: ReadonlyArray<string>): number => {
  const [command, ...rest] = argv
  try {
    if (command === "timeline") {
      timeline(rest)
      return 0
    }
    if (command === undefined || command === "--help" || command === "-h" || command === "help") {
      process.stdout.write(usage)
      return command === undefined ? 2 : 0
    }
    throw new Failure(`unknown command ${JSON.stringify(command)}: the one command is "timeline"; --help for usage`, 2)
  } catch (e) {
    if (e instanceof Failure) {
      process.stderr.write(`winddown ${command === "timeline" ? "timeline: " : ""}${e.message}\n`)
      return e.code
    }
    // A bug of ours: still one line, and a way to see more.
    process.stderr.write(
      `winddown: internal error: ${e instanceof Error ? e.message : String(e)} (WINDDOWN_DEBUG=1 shows the stack)\n`
    )
    if (process.env.WINDDOWN_DEBUG) process.stderr.write(`${e instanceof Error ? e.stack : ""}\n`)
    return 70
  }
}

process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  // `winddown timeline < log | head` closes the pipe early: not an error worth a trace.
  process.exit(e.code === "EPIPE" ? 0 : 1)
})
process.exitCode = main(process.argv.slice(2))
