/**
 * Time budgets for a shutdown: one global timeout, the hard deadline, split
 * into one budget per phase.
 *
 * The drain phase gets whatever the other phases leave, so a longer timeout
 * means more time for work in flight. `fromKubernetes` derives the split from
 * a pod's `terminationGracePeriodSeconds`, and every impossible split is a
 * `BudgetError` that names the numbers.
 *
 * @since 0.1.0
 */
import { Data, Effect, Result } from "effect"
import { formatMillis, type Input as DurationInput, toMillis } from "./internal/duration.ts"
import * as Phase from "./Phase.ts"
import { sourceOf } from "./ShutdownConfig.ts"

/**
 * A duration option: anything `Duration` reads ("25 seconds", 1500, ...) or a
 * short form ("25s", "500ms", "2m").
 *
 * @since 0.1.0
 * @category models
 */
export type { DurationInput }

/**
 * A validated split of the shutdown time, in milliseconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface Budget {
  /** The hard deadline, counted from the moment shutdown starts. */
  readonly timeoutMs: number
  /** The most each phase may take. Their sum never exceeds `timeoutMs`. */
  readonly phasesMs: { readonly [P in Phase.Phase]: number }
}

/**
 * What a caller may set; anything left out takes its default and `drain`
 * takes the rest of the timeout.
 *
 * @since 0.1.0
 * @category models
 */
export interface Input {
  readonly timeout?: DurationInput | undefined
  readonly readiness?: DurationInput | undefined
  readonly preStop?: DurationInput | undefined
  readonly stopAccepting?: DurationInput | undefined
  readonly drain?: DurationInput | undefined
  readonly cleanup?: DurationInput | undefined
  readonly flush?: DurationInput | undefined
}

/**
 * The defaults, in one place: the README's options table is checked against
 * this object by a test.
 *
 * `timeout` is Kubernetes' default 30 s grace period minus a 5 s margin. A
 * phase left unset gets the smaller of `max` and `share` of the timeout, so a
 * short timeout still splits; `drain` gets what the others leave (at least
 * 55 %), `preStop` defaults to no delay.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaults = {
  timeout: "25 seconds",
  preStop: "0 seconds",
  phases: {
    readiness: { max: "1 second", share: 0.05 },
    stopAccepting: { max: "2 seconds", share: 0.1 },
    cleanup: { max: "5 seconds", share: 0.2 },
    flush: { max: "2 seconds", share: 0.1 }
  }
} as const

type SharedPhase = keyof typeof defaults.phases

const isShared = (phase: Phase.Phase): phase is SharedPhase => phase in defaults.phases

/**
 * Why a budget cannot work.
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetError extends Data.TaggedError("BudgetError")<{
  readonly reason: "InvalidDuration" | "NotPositive" | "Overcommitted" | "PreStopTooLong"
  readonly message: string
}> {
  constructor(args: { readonly reason: BudgetError["reason"]; readonly message: string }) {
    super(args)
    // A budget that cannot work is the user's input, not a bug: one line, no stack frames.
    this.stack = `${this._tag}: ${this.message}`
  }
}

const readMillis = (name: string, input: DurationInput): Result.Result<number, BudgetError> => {
  const ms = toMillis(input)
  if (ms === undefined || Number.isNaN(ms)) {
    return Result.fail(
      new BudgetError({ reason: "InvalidDuration", message: `${name}: cannot read ${JSON.stringify(input)} as a duration` })
    )
  }
  return Result.succeed(ms)
}

/** How a value is named in messages: the option, or the variable that set it (`WINDDOWN_DRAIN=20s`). */
const labelOf = (input: object, option: string, value: unknown): string => {
  const variable = sourceOf(input, option)
  return variable === undefined ? option : `${variable}=${typeof value === "string" ? value : JSON.stringify(value)}`
}

/**
 * Validate a split synchronously.
 *
 * Rules: the timeout is finite and positive; `preStop` may be zero, every other
 * phase must be positive; the phases may not add up to more than the timeout;
 * the pre-stop delay must leave time for the rest.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validate = (input: Input = {}): Result.Result<Budget, BudgetError> => {
  const ms: Record<string, number> = {}
  const label = (option: string) => labelOf(input, option, (input as Record<string, unknown>)[option])
  const timeout = readMillis(label("timeout"), input.timeout ?? defaults.timeout)
  if (Result.isFailure(timeout)) return Result.fail(timeout.failure)
  ms.timeout = timeout.success
  for (const phase of Phase.all) {
    const value = input[phase]
    if (value === undefined) {
      if (phase === "preStop") ms.preStop = toMillis(defaults.preStop)!
      else if (isShared(phase)) {
        const { max, share } = defaults.phases[phase]
        ms[phase] = Math.min(toMillis(max)!, Math.round(share * timeout.success))
      }
      continue
    }
    const read = readMillis(label(phase), value)
    if (Result.isFailure(read)) return Result.fail(read.failure)
    ms[phase] = read.success
  }
  const timeoutMs = ms.timeout!
  // Which of the values involved came from the environment, to name them.
  const setBy = () => {
    const set = ["timeout", ...Phase.all].filter((o) => sourceOf(input, o) !== undefined).map(label)
    return set.length === 0 ? "" : ` (set by ${set.join(", ")})`
  }
  if (!(timeoutMs > 0) || timeoutMs === Infinity) {
    return fail("NotPositive", `${label("timeout")}: the timeout must be a finite duration above zero, got ${show(timeoutMs)}`)
  }
  for (const phase of Phase.all) {
    const value = ms[phase]
    if (value === undefined) continue
    if (value < 0 || (value === 0 && phase !== "preStop")) {
      return fail("NotPositive", `${label(phase)}: the ${phase} budget must be ${phase === "preStop" ? "zero or more" : "above zero"}, got ${show(value)}`)
    }
  }
  if (ms.preStop! >= timeoutMs) {
    return fail("PreStopTooLong", `preStop delay ${show(ms.preStop!)} leaves nothing of the ${show(timeoutMs)} timeout${setBy()}`)
  }
  const fixed = Phase.all.filter((p) => p !== "drain").reduce((sum, p) => sum + ms[p]!, 0)
  const drain = ms.drain ?? timeoutMs - fixed
  const total = fixed + drain
  const parts = () => Phase.all.filter((p) => p !== "drain" || ms.drain !== undefined).map((p) => `${p} ${show(ms[p]!)}`).join(" + ")
  if (ms.drain === undefined && drain <= 0) {
    return fail("Overcommitted", `phases need ${parts()} = ${show(fixed)}, which leaves nothing of the ${show(timeoutMs)} timeout for drain${setBy()}`)
  }
  if (total > timeoutMs) {
    return fail("Overcommitted", `phases need ${parts()} = ${show(total)}, more than the ${show(timeoutMs)} timeout${setBy()}`)
  }
  const phasesMs = Object.fromEntries(Phase.all.map((p) => [p, p === "drain" ? drain : ms[p]!])) as Budget["phasesMs"]
  return Result.succeed({ timeoutMs, phasesMs })
}

/**
 * Validate a split as an Effect, for layer construction.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (input: Input = {}): Effect.Effect<Budget, BudgetError> => Effect.fromResult(validate(input))

/**
 * Kubernetes' side of the arithmetic.
 *
 * @since 0.1.0
 * @category models
 */
export interface KubernetesInput extends Omit<Input, "timeout"> {
  /** The pod's `terminationGracePeriodSeconds` (Kubernetes' default is 30). */
  readonly terminationGracePeriodSeconds: number
  /**
   * A `preStop` hook in the pod spec (e.g. `sleep 5`). Kubernetes runs it
   * before sending SIGTERM, and it counts against the grace period.
   */
  readonly preStopHook?: DurationInput | undefined
  /** Kept free at the end for the kubelet's SIGKILL to never be needed. Default 2 s. */
  readonly safetyMargin?: DurationInput | undefined
}

/**
 * Derive a budget from a grace period: `timeout = grace - preStopHook -
 * safetyMargin`, split like {@link make}. A pod whose preStop hook already
 * sleeps usually sets `preStop: 0` here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromKubernetes = (input: KubernetesInput): Effect.Effect<Budget, BudgetError> =>
  Effect.fromResult(validateKubernetes(input))

/**
 * Synchronous {@link fromKubernetes}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const validateKubernetes = (input: KubernetesInput): Result.Result<Budget, BudgetError> => {
  const { preStopHook, safetyMargin, terminationGracePeriodSeconds: grace, ...phases } = input
  if (!Number.isFinite(grace) || grace <= 0) {
    return fail("NotPositive", `terminationGracePeriodSeconds must be above zero, got ${grace}`)
  }
  const graceMs = grace * 1000
  const hook = readMillis("preStopHook", preStopHook ?? 0)
  if (Result.isFailure(hook)) return Result.fail(hook.failure)
  const margin = readMillis("safetyMargin", safetyMargin ?? "2 seconds")
  if (Result.isFailure(margin)) return Result.fail(margin.failure)
  if (hook.success < 0 || margin.success < 0) {
    return fail("NotPositive", `preStopHook and safetyMargin must be zero or more, got ${show(hook.success)} and ${show(margin.success)}`)
  }
  if (hook.success >= graceMs) {
    return fail("PreStopTooLong", `preStop hook ${show(hook.success)} >= terminationGracePeriodSeconds ${grace} s: SIGTERM would come after the grace period`)
  }
  const timeoutMs = graceMs - hook.success - margin.success
  if (timeoutMs <= 0) {
    return fail("Overcommitted", `grace ${grace} s - preStop hook ${show(hook.success)} - safety margin ${show(margin.success)} = ${show(timeoutMs)}: nothing left for the shutdown`)
  }
  const result = validate({ ...phases, timeout: timeoutMs })
  return Result.mapError(result, (e) =>
    new BudgetError({
      reason: e.reason,
      message: `${e.message} (timeout = grace ${grace} s - preStop hook ${show(hook.success)} - safety margin ${show(margin.success)})`
    }))
}

/**
 * One line describing the split, for the startup log.
 *
 * @since 0.1.0
 * @category combinators
 */
export const format = (budget: Budget): string =>
  `timeout ${show(budget.timeoutMs)} (${Phase.all.map((p) => `${p} ${show(budget.phasesMs[p])}`).join(", ")})`

const show = formatMillis

const fail = (reason: BudgetError["reason"], message: string) => Result.fail(new BudgetError({ reason, message }))
