/**
 * One validation of options for every module (Shutdown, NodeShutdown, Drain,
 * Worker, Health, NodeHealth, NodeHttpDrain). A module describes its options
 * with the checks below inside {@link check}; the first bad value stops the
 * check with a `ShutdownConfigError` whose one-line message names the option,
 * or the environment variable it came from, and the value.
 */
import { Effect } from "effect"
import { ShutdownConfigError, sourceOf } from "../ShutdownConfig.ts"
import { type Input as DurationInput, toMillis } from "./duration.ts"

const show = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) {
    return String(value)
  }
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** Thrown inside {@link check} only; never escapes it. */
class Refusal {
  constructor(readonly error: ShutdownConfigError) {}
}

/** The checks; each returns the value read, or stops the whole check. */
export interface Checker {
  /** Refuse `value` of `option`: "expected ...". */
  readonly refuse: (option: string, value: unknown, expected: string) => never
  /** A duration in ms; `undefined` stays undefined. Zero only with `zero`, infinity only with `infinite`. */
  readonly duration: (
    option: string,
    value: DurationInput | undefined,
    rule?: { readonly zero?: boolean; readonly infinite?: boolean }
  ) => number | undefined
  readonly integer: (option: string, value: unknown, min: number, max: number) => number | undefined
  /** A number in (min, max] when `exclusiveMin`, else [min, max]. */
  readonly number: (
    option: string,
    value: unknown,
    range: { readonly min: number; readonly max: number; readonly exclusiveMin?: boolean }
  ) => number | undefined
  readonly boolean: (option: string, value: unknown) => boolean | undefined
  readonly oneOf: <const L extends string>(option: string, value: unknown, allowed: ReadonlyArray<L>) => L | undefined
  readonly name: (option: string, value: unknown) => string
  readonly func: (option: string, value: unknown) => void
}

/**
 * Validate options. `from` is the options object as the caller passed it
 * (values read from the environment remember their variable, see
 * `ShutdownConfig.layerConfig`).
 */
export const check = <A>(from: object | undefined, f: (c: Checker) => A): Effect.Effect<A, ShutdownConfigError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(f(checker(from)))
    } catch (e) {
      if (e instanceof Refusal) return Effect.fail(e.error)
      throw e
    }
  })

/** {@link check} for plain code: the error as a value instead of an Effect failure. */
export const checkSync = <A>(from: object | undefined, f: (c: Checker) => A): A | ShutdownConfigError => {
  try {
    return f(checker(from))
  } catch (e) {
    if (e instanceof Refusal) return e.error
    throw e
  }
}

const checker = (from: object | undefined): Checker => {
  const refuse = (option: string, value: unknown, expected: string): never => {
    const variable = from === undefined ? undefined : sourceOf(from, option)
    const message = variable === undefined
      ? `${option}: expected ${expected}, got ${show(value)}`
      : `${variable}=${show(value)}: expected ${expected}`
    throw new Refusal(
      new ShutdownConfigError({
        option,
        ...(variable === undefined ? {} : { variable }),
        value: typeof value === "string" ? value : show(value),
        message
      })
    )
  }
  return {
    refuse,
    duration: (option, value, rule = {}) => {
      if (value === undefined) return undefined
      const ms = toMillis(value)
      const expected = `a duration ${rule.zero ? "of zero or more" : "above zero"} (like 25s, 500ms or "2 seconds")`
      if (ms === undefined || Number.isNaN(ms) || ms < 0 || (ms === 0 && !rule.zero)) return refuse(option, value, expected)
      if (ms === Infinity && !rule.infinite) return refuse(option, value, `a finite ${expected.slice(2)}`)
      return ms
    },
    integer: (option, value, min, max) => {
      if (value === undefined) return undefined
      if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        return refuse(option, value, `a whole number from ${min} to ${max === Infinity ? "any" : max}`)
      }
      return value
    },
    number: (option, value, range) => {
      if (value === undefined) return undefined
      const ok = typeof value === "number" && !Number.isNaN(value) && value <= range.max &&
        (range.exclusiveMin ? value > range.min : value >= range.min)
      if (!ok) {
        return refuse(option, value, `a number ${range.exclusiveMin ? "above" : "from"} ${range.min} ${range.exclusiveMin ? "and at most" : "to"} ${range.max}`)
      }
      return value as number
    },
    boolean: (option, value) => {
      if (value === undefined) return undefined
      if (typeof value !== "boolean") return refuse(option, value, "true or false")
      return value
    },
    oneOf: (option, value, allowed) => {
      if (value === undefined) return undefined
      if (typeof value !== "string" || !allowed.includes(value as never)) {
        return refuse(option, value, `one of ${allowed.join(", ")}`)
      }
      return value as never
    },
    name: (option, value) => {
      if (typeof value !== "string" || value.trim().length === 0) return refuse(option, value, "a non-empty name")
      return value
    },
    func: (option, value) => {
      if (typeof value !== "function") refuse(option, value, "a function")
    }
  }
}



