/**
 * How subsystems that drain work (Drain, Worker, the HTTP drain) keep the
 * Scope they were made in open until their work drained, when a shutdown is
 * running. That Scope's earlier finalizers are what the work depends on (a
 * pool provided around them, a layer they were built on), so effect's own
 * reverse order then releases those after the work, not under it.
 *
 * A phase scope of the Shutdown itself (what the layer provides as the
 * program's `Scope`) only closes during the shutdown, after their steps: no
 * finalizer is added there.
 */
import { Effect, Scope } from "effect"
import * as Phase from "../Phase.ts"
import type * as Shutdown from "../Shutdown.ts"

export const isPhaseScope = (shutdown: Shutdown.Service, scope: Scope.Scope): boolean =>
  Phase.all.some((phase) => shutdown.scope(phase) === scope)

/**
 * On close of the current Scope: during a shutdown, wait for `drained`;
 * before any shutdown, run `closeNow` (the subsystem's own bounded close).
 */
export const holdScope = (
  shutdown: Shutdown.Service,
  drained: Effect.Effect<void>,
  closeNow: Effect.Effect<void>
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.Scope
    if (isPhaseScope(shutdown, scope)) return
    yield* Scope.addFinalizer(scope, Effect.suspend(() => shutdown.isShuttingDownUnsafe() ? drained : closeNow))
  })
