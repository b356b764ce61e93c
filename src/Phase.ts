/**
 * The phases of a shutdown, in the one order they always run.
 *
 * Every cleanup step belongs to exactly one phase. A phase starts only after
 * the previous one has finished or run out of its budget, so "readiness is off
 * before the listener closes" and "the database closes after requests drained"
 * are facts of the type, not of registration order.
 *
 * @since 0.1.0
 */

/**
 * The phases in execution order.
 *
 * - `readiness`: readiness probes start failing (the flag flips at the signal;
 *   steps here deregister from discovery and the like).
 * - `preStop`: wait while still serving, so load balancers stop routing here.
 * - `stopAccepting`: close listeners, stop pulling from queues.
 * - `drain`: wait for work in flight. Steps of this phase run concurrently.
 * - `cleanup`: release resources (pools, files). Plain finalizers of the
 *   program land here.
 * - `flush`: last words: metrics, logs, traces.
 *
 * @since 0.1.0
 * @category models
 */
export const all = ["readiness", "preStop", "stopAccepting", "drain", "cleanup", "flush"] as const

/**
 * A phase of the shutdown sequence.
 *
 * @since 0.1.0
 * @category models
 */
export type Phase = (typeof all)[number]

/**
 * Where a shutdown stands: not started, inside one phase, or finished.
 *
 * @since 0.1.0
 * @category models
 */
export type Status = "running" | Phase | "done"

/**
 * True for the phases whose steps run concurrently rather than one by one.
 * Drains wait on independent work (requests, jobs), so each gets the whole
 * phase budget instead of queueing behind the others.
 *
 * @since 0.1.0
 * @category models
 */
export const isConcurrent = (phase: Phase): boolean => phase === "drain"

/**
 * True for the phases that a second signal cuts short at once (waits and
 * drains); other phases keep running with a short per-step timeout.
 *
 * @since 0.1.0
 * @category models
 */
export const isSkippedWhenForced = (phase: Phase): boolean => phase === "preStop" || phase === "drain"

/**
 * The position of a phase in the sequence, 0-based.
 *
 * @since 0.1.0
 * @category models
 */
export const indexOf = (phase: Phase): number => all.indexOf(phase)

/**
 * Narrow an unknown string to a phase.
 *
 * @since 0.1.0
 * @category models
 */
export const isPhase = (u: unknown): u is Phase => typeof u === "string" && (all as ReadonlyArray<string>).includes(u)
