/**
 * Spans of a shutdown, with effect's tracer: whatever `Tracer` the program
 * provides (OTLP, OpenTelemetry) receives them. With effect's default tracer
 * (nobody collects its spans) nothing is created at all, so a program without
 * tracing pays nothing for them.
 */
import { Clock, Data, Effect, Exit, type Fiber, References, Tracer } from "effect"

export type Attributes = Readonly<Record<string, unknown>>

/** Carries a value out of a span whose status must say "error". */
class Unhealthy<A> extends Data.Error<{ readonly value: A }> {}

/**
 * Run `effect` in a span named `name`. `end` gives attributes known only at
 * the end (an outcome, counts); `failed` marks the span as an error without
 * failing the effect.
 */
export const span = <A, E, R>(
  name: string,
  effect: Effect.Effect<A, E, R>,
  options: {
    readonly attributes?: Attributes
    readonly root?: boolean
    readonly end?: (a: A) => Attributes
    readonly failed?: (a: A) => boolean
  } = {}
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    if (fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer) return effect
    // effect's own span (useSpan ends it with the effect's exit), without
    // the call-site stack that withSpan captures for every span: it would
    // point into this file, and capturing it was most of a step's tracing cost.
    return Effect.useSpan(name, {
      ...(options.attributes === undefined ? {} : { attributes: options.attributes }),
      ...(options.root === true ? { root: true } : {})
    }, (span) =>
      Effect.map(Effect.withParentSpan(effect, span, noStack), (a) => {
        if (options.end !== undefined) {
          const attributes = options.end(a)
          for (const key in attributes) span.attribute(key, attributes[key])
        }
        // Ended here with an error status; useSpan's own end is then a no-op.
        if (options.failed?.(a)) span.end(endTime(fiber), Exit.fail(new Unhealthy({ value: a })))
        return a
      }))
  })

const noStack = { captureStackTrace: false } as const

/** What effect's own span end uses: the fiber's clock, unless span timing is off. */
const endTime = (fiber: Fiber.Fiber<unknown, unknown>): bigint =>
  fiber.getRef(References.TracerTimingEnabled) ? fiber.getRef(Clock.Clock).currentTimeNanosUnsafe() : 0n

/** Whether spans are made at all: a tracer other than effect's default is in the context. */
export const enabled: Effect.Effect<boolean> = Effect.withFiber((fiber) =>
  Effect.succeed(fiber.getRef(Tracer.Tracer) !== Tracer.nativeTracer)
)

/** Add attributes to the current span, if there is one worth it. */
export const annotate = (attributes: () => Attributes): Effect.Effect<void> =>
  Effect.withFiber((fiber) =>
    fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? Effect.void : Effect.annotateCurrentSpan(attributes())
  )
