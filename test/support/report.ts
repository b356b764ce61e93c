/** Reading reports in tests, and running a test body against a Shutdown under TestClock. */
import { assert } from "@effect/vitest"
import { Effect, Option, type Scope } from "effect"
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

/** The report line a child process printed (`reportJson: true`), read back through the report's Schema. */
export const reportFromOutput = (output: string): ShutdownReport.ShutdownReport => {
  for (const line of output.split("\n").reverse()) {
    const report = ShutdownReport.fromJsonLine(line)
    if (Option.isSome(report)) return report.value
  }
  return assert.fail(`no report line in:\n${output}`)
}

/** True when the output holds a report line. */
export const hasReportLine = (output: string): boolean =>
  output.split("\n").some((l) => Option.isSome(ShutdownReport.fromJsonLine(l)))

/**
 * Units of a drain that failed (not interrupted): the section's count, and
 * the drain's step is then `failed` (work that dies in a drain fails its step).
 */
export const failedUnits = (report: ShutdownReport.ShutdownReport, drain: string): number => {
  const failed = Number(section(report, `drain ${drain}`).failed ?? 0)
  if (failed > 0) assert.strictEqual(stepNamed(report, drain).outcome, "failed", `the step of drain ${drain}`)
  return failed
}
