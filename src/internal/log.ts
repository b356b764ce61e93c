/**
 * How winddown logs: one human line through effect's `Logger`, plus fields
 * (`winddown.phase`, `winddown.step`, `winddown.outcome`, ...) as log
 * annotations, so a JSON or OTLP logger gets data. Effect's default logger
 * prints annotations after the text; with only it installed the fields are
 * left off, so the text people read stays one line. Nothing is built when the
 * level is filtered out (a shutdown may log thousands of steps).
 */
import { Effect, Logger, LogLevel, References } from "effect"

/** Log fields, e.g. `{ "winddown.phase": "drain" }`. */
export type Fields = Readonly<Record<string, string | number | boolean>>

type Level = "Debug" | "Info" | "Warn" | "Error"

const plain = new Set<unknown>([Logger.defaultLogger, Logger.tracerLogger])

const wantsFields = (loggers: ReadonlySet<unknown>): boolean => {
  for (const logger of loggers) if (!plain.has(logger)) return true
  return false
}

/** Log `text()` with `fields()`, both built only if the level is enabled. */
export const lazy = (level: Level, text: () => string, fields: () => Fields): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    if (LogLevel.isGreaterThan(fiber.getRef(References.MinimumLogLevel), level)) return Effect.void
    const line = Effect.logWithLevel(level)(text())
    return wantsFields(fiber.getRef(References.CurrentLoggers)) ? Effect.annotateLogs(line, fields()) : line
  })

/**
 * A log line built elsewhere (with extra message parts, say), with `fields()`
 * as annotations when a logger wants them: the default logger's text stays
 * as it was.
 */
export const withFields = <A, E, R>(effect: Effect.Effect<A, E, R>, fields: () => Fields): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) =>
    wantsFields(fiber.getRef(References.CurrentLoggers)) ? Effect.annotateLogs(effect, fields()) : effect
  )

export const log = (level: Level, text: string, fields: Fields = {}): Effect.Effect<void> =>
  lazy(level, () => text, () => fields)

export const info = (text: string, fields?: Fields) => log("Info", text, fields)
export const warn = (text: string, fields?: Fields) => log("Warn", text, fields)
export const error = (text: string, fields?: Fields) => log("Error", text, fields)
