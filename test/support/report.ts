/** Reading reports in tests, and running a test body against a Shutdown under TestClock. */
import { assert } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { Shutdown, ShutdownReport } from "../../src/index.ts"
import { TestShutdown } from "../../src/testing/index.ts"

export const section = (report: ShutdownReport.ShutdownReport, name: string): Record<string, unknown> => {
  const found = report.sections.find((s) => s.name === name)
  assert.isDefined(found, `no section named ${name}; have ${report.sections.map((s) => s.name).join(", ")}`)
  return found!.data as Record<string, unknown>
}

export const stepNamed = (report: ShutdownReport.ShutdownReport, name: string) => {
  const step = ShutdownReport.steps(report).find((s) => s.name === name)
  assert.isDefined(step, `no step named ${name}`)
  return step!
}

/** Build a Shutdown under test and provide it to `f`. */
export const withShutdown = <A, E>(
  options: Shutdown.Options,
  f: (t: TestShutdown.TestShutdown) => Effect.Effect<A, E, Shutdown.Shutdown | Scope.Scope>
) => Effect.flatMap(TestShutdown.make(options), (t) => Effect.provideService(f(t), Shutdown.Shutdown, t.shutdown))

/**
 * The report a child process printed with `reportJson: true`, parsed. The one
 * place that knows the line's shape (`[winddown] report {...}` today,
 * `{"event":"winddown.report",...}` once the core switches): both are read.
 */
export const reportFromOutput = (output: string): ShutdownReport.ShutdownReport => {
  const prefix = "[winddown] report "
  for (const line of output.split("\n")) {
    if (line.startsWith(`${prefix}{`)) return JSON.parse(line.slice(prefix.length))
    if (line.startsWith("{\"event\":\"winddown.report\"")) return JSON.parse(line)
  }
  assert.fail(`no report line in the output:\n${output}`)
}

/** True when the output holds a JSON report line, whatever its shape. */
export const hasReportLine = (output: string): boolean =>
  output.split("\n").some((l) => l.startsWith("[winddown] report {") || l.startsWith("{\"event\":\"winddown.report\""))

/**
 * Units of a drain that failed (not interrupted) in the report: the section's
 * count today. TODO(issue 8): once drains mark their step `failed` when work
 * dies in them, also require `stepNamed(report, drain).outcome === "failed"`
 * here, so every test that uses this checks the step outcome.
 */
export const failedUnits = (report: ShutdownReport.ShutdownReport, drain: string): number =>
  Number(section(report, `drain ${drain}`).failed ?? 0)
