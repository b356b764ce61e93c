/**
 * Helpers to test a shutdown inside `it.effect`, driven by `TestClock`: build
 * a Shutdown without signals, end "the program", move time and read the
 * report.
 *
 * @since 0.1.0
 */
import { Deferred, Duration, Effect, Exit, Option, Scope } from "effect"
import { TestClock } from "effect/testing"
import type * as Budget from "../Budget.ts"
import type { ShutdownConfigError } from "../ShutdownConfig.ts"
import * as Shutdown from "../Shutdown.ts"
import type * as ShutdownReport from "../ShutdownReport.ts"

/**
 * A Shutdown under test.
 *
 * @since 0.1.0
 * @category testing
 */
export interface TestShutdown {
  readonly shutdown: Shutdown.Service
  /** Close the Shutdown's owning scope, as if the program ended with `exit` (default: interrupted). */
  readonly endProgram: (exit?: Exit.Exit<unknown, unknown>) => Effect.Effect<void>
  /**
   * Start the shutdown (if `reason` is given), end the program, and move the
   * TestClock in `step`s until the report exists. Fails the test with a defect
   * if it never appears within the budget plus a minute of test time.
   */
  readonly runToReport: (options?: {
    readonly reason?: string | undefined
    readonly step?: Duration.Input | undefined
  }) => Effect.Effect<ShutdownReport.ShutdownReport>
}

/**
 * Build a Shutdown in a fresh scope, for tests. Its steps run against the
 * TestClock of the calling test.
 *
 * @since 0.1.0
 * @category testing
 */
export const make = (options: Shutdown.Options = {}): Effect.Effect<TestShutdown, Budget.BudgetError | ShutdownConfigError> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const shutdown = yield* Shutdown.make(options).pipe(Scope.provide(scope))
    const endProgram = (exit: Exit.Exit<unknown, unknown> = Exit.interrupt()) =>
      Effect.asVoid(Effect.forkDetach(Scope.close(scope, exit)))
    const runToReport: TestShutdown["runToReport"] = (run = {}) =>
      Effect.gen(function*() {
        if (run.reason !== undefined) yield* shutdown.trigger(run.reason)
        yield* endProgram()
        const report = yield* Deferred.make<ShutdownReport.ShutdownReport>()
        yield* Effect.forkDetach(Effect.flatMap(shutdown.awaitReport, (r) => Deferred.succeed(report, r)))
        const stepMs = Duration.toMillis(Duration.fromInputUnsafe(run.step ?? 100))
        const limit = shutdown.budget.timeoutMs + 60_000
        for (let moved = 0; moved <= limit; moved += stepMs) {
          yield* Effect.yieldNow
          const done = yield* Deferred.poll(report)
          if (Option.isSome(done)) return yield* done.value
          yield* TestClock.adjust(stepMs)
        }
        return yield* Effect.die(new Error(`no shutdown report after ${limit} ms of test time`))
      })
    return { shutdown, endProgram, runToReport }
  })
