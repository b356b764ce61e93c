/**
 * Whether a Scope is one of a Shutdown's own phase scopes (what the Shutdown
 * layer provides as the program's `Scope`). Drains and workers made in such a
 * scope skip their "Scope closed before the shutdown" finalizer: that scope
 * only closes during the shutdown, after their own steps ran, and the extra
 * finalizer would only be an anonymous step in the report.
 */
import type { Scope } from "effect"
import * as Phase from "../Phase.ts"
import type * as Shutdown from "../Shutdown.ts"

export const isPhaseScope = (shutdown: Shutdown.Service, scope: Scope.Scope): boolean =>
  Phase.all.some((phase) => shutdown.scope(phase) === scope)
