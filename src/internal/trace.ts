/**
 * Spans of a shutdown, with effect's tracer: whatever `Tracer` the program
 * provides (OTLP, OpenTelemetry) receives them. With effect's default tracer
 * (nobody collects its spans) nothing is created at all, so a program without
 * tracing pays nothing for them.
 */
import { Data, Effect, Tracer } from "effect"

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
    const traced = Effect.flatMap(effect, (a): Effect.Effect<A, E | Unhealthy<A>> => {
      const ended = options.end === undefined ? Effect.void : Effect.annotateCurrentSpan(options.end(a))
      return Effect.andThen(ended, options.failed?.(a) ? Effect.fail(new Unhealthy({ value: a })) : Effect.succeed(a))
    })
    return Effect.withSpan(traced, name, {
      ...(options.attributes === undefined ? {} : { attributes: options.attributes }),
      ...(options.root === true ? { root: true } : {})
    }).pipe(
      Effect.catchIf((e): e is Unhealthy<A> => e instanceof Unhealthy, (e) => Effect.succeed(e.value))
    ) as Effect.Effect<A, E, R>
  })

/** Add attributes to the current span, if there is one worth it. */
export const annotate = (attributes: () => Attributes): Effect.Effect<void> =>
  Effect.withFiber((fiber) =>
    fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer ? Effect.void : Effect.annotateCurrentSpan(attributes())
  )
