/**
 * The deadline of the step a fiber is running in, so `Shutdown.wait` inside a
 * step can stop early enough for the step to act on a `false` answer (force
 * the pool closed, say) before the step itself is cut.
 */
import { Context } from "effect"

export const StepDeadline = Context.Reference<number | undefined>("winddown/StepDeadline", {
  defaultValue: () => undefined
})

/** What a wait leaves of a step's time to act on its answer: a tenth, at most `capMs`. */
export const reserveMs = (allowanceMs: number, capMs: number): number => Math.min(capMs, allowanceMs / 10)
