/**
 * Phase scopes hold the cleanup steps as ordinary Scope finalizers, so that a
 * named step and a plain `Effect.addFinalizer` / `acquireRelease` registered
 * in the same scope share one order (reverse acquisition). At shutdown the
 * finalizers are taken out of the scope and run one by one by the step runner,
 * which times and bounds each of them; `Scope.close` alone could do neither.
 *
 * This reads `Scope.state`, which effect exports as part of the public
 * `Scope` interface (`Scope.State.Open`). test/scopeSteps.test.ts pins the
 * behaviour so an effect upgrade that changes it fails loudly.
 */
import { type Effect, type Exit, Scope } from "effect"

/** A finalizer about to run as a step. */
export interface Step {
  readonly name: string
  readonly timeoutMs: number | undefined
  readonly run: (exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, unknown>
  /**
   * Whether the work behind the step still runs once its fiber was abandoned.
   * Default: whether the fiber still runs. The program's own unwinding
   * answers for itself (its step only waits for it).
   */
  readonly isRunning?: (() => boolean) | undefined
}

/** A named step's finalizer carries its name and timeout (cheaper than a side table). */
interface Named {
  (exit: Exit.Exit<unknown, unknown>): Effect.Effect<unknown>
  stepName?: string
  stepTimeoutMs?: number | undefined
}

/** Register a named step as a finalizer of `scope`. */
export const add = (
  scope: Scope.Scope,
  name: string,
  timeoutMs: number | undefined,
  finalizer: (exit: Exit.Exit<unknown, unknown>) => Effect.Effect<unknown, unknown>
): Effect.Effect<void> => {
  // A failing step must not fail the scope close: the runner reports it. The
  // cast only widens the error channel that Scope's signature leaves out.
  const fn = finalizer as Named
  fn.stepName = name
  fn.stepTimeoutMs = timeoutMs
  return Scope.addFinalizerExit(scope, fn)
}

const isScope = (u: unknown): boolean => typeof u === "object" && u !== null && "strategy" in u && "state" in u

/**
 * Remove every finalizer from `scope` and close it, returning the finalizers
 * in the order Effect would have run them (last added first). Finalizers added
 * after this run immediately, as with any closed scope.
 */
export const take = (scope: Scope.Closeable, exit: Exit.Exit<unknown, unknown>): ReadonlyArray<Step> => {
  const state = scope.state
  const entries: Array<readonly [object, (exit: Exit.Exit<any, any>) => Effect.Effect<unknown>]> = []
  if (state._tag === "Open") {
    if (state.finalizer !== undefined) entries.push([state.finalizerKey ?? {}, state.finalizer])
    else if (state.finalizers !== undefined) entries.push(...state.finalizers)
  }
  scope.state = { _tag: "Empty" }
  const steps = entries.flatMap(([key, finalizer], i): Array<Step> => {
    // A child scope with nothing in it (what `Layer.build` leaves when a layer
    // put its resources in the phases) is closed quietly, not reported.
    if (isScope(key) && (key as Scope.Scope).state._tag === "Empty") {
      Scope.closeUnsafe(key as Scope.Closeable, exit)
      return []
    }
    const named = finalizer as Named
    return [{
      name: named.stepName ?? (isScope(key) ? `scope #${i + 1}` : `finalizer #${i + 1}`),
      timeoutMs: named.stepTimeoutMs,
      run: finalizer
    }]
  })
  // The scope is empty now: closing it only marks it closed and detaches it
  // from its parent, so nothing runs here.
  Scope.closeUnsafe(scope, exit)
  return steps.reverse()
}
