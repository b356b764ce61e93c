/**
 * Duration parsing shared by options and environment variables. Shutdown
 * budgets are small numbers of milliseconds, so everything internal is plain
 * milliseconds; `Duration` is the public face.
 */
import { Duration, Option } from "effect"

/** What options accept: effect's `Duration.Input` plus the short forms of environment variables ("25s", "500ms"). */
export type Input = Duration.Input | `${number}${"ms" | "s" | "m" | "h"}` | `${number} ${"ms" | "s" | "m" | "h"}`

const unitMillis: Record<string, number> = {
  ms: 1, milli: 1, millis: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000
}

const pattern = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i

/** Parse "25s", "1.5 s", "500ms", "2m", "25 seconds". A bare number is refused: the unit is never guessed. */
export const parseMillis = (text: string): number | undefined => {
  const match = pattern.exec(text)
  if (match === null) return undefined
  const unit = unitMillis[match[2]!.toLowerCase()]
  return unit === undefined ? undefined : Number(match[1]) * unit
}

/** Milliseconds of any `Duration.Input`, or of a string understood by {@link parseMillis}; undefined when unreadable. */
export const toMillis = (input: Input): number | undefined => {
  if (typeof input === "string") {
    const parsed = parseMillis(input)
    if (parsed !== undefined) return parsed
  }
  return Option.match(Duration.fromInput(input as Duration.Input), {
    onNone: () => undefined,
    onSome: (d) => Duration.toMillis(d)
  })
}

/** "1.5 s", "250 ms": what log lines and error messages print. */
export const formatMillis = (ms: number): string =>
  ms === Infinity ? "unbounded" : ms >= 1000 ? `${+(ms / 1000).toFixed(3)} s` : `${Math.round(ms)} ms`
