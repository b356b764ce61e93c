/**
 * The metrics of a shutdown, with effect's `Metric`: any metrics exporter the
 * program provides (OTLP, Prometheus) receives them. Names and attributes
 * follow OpenTelemetry's naming rules (lowercase, dotted, durations in
 * seconds); no semantic convention exists for a process shutdown, so they live
 * under `winddown.`. {@link definitions} lists every one; the README's table
 * is checked against it.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/** Seconds, from 1 ms to 10 minutes: a shutdown and its phases. */
const secondsBoundaries = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600]

/**
 * One metric's description, for documentation.
 *
 * @since 0.1.0
 * @category models
 */
export interface Definition {
  readonly name: string
  readonly kind: "counter" | "gauge" | "histogram"
  readonly unit: string
  readonly attributes: ReadonlyArray<string>
  readonly description: string
}

/**
 * Every metric winddown records.
 *
 * @since 0.1.0
 * @category models
 */
export const definitions = [
  {
    name: "winddown.shutdowns",
    kind: "counter",
    unit: "{shutdown}",
    attributes: ["winddown.reason", "winddown.exit_code"],
    description: "Shutdowns that ran to their report, by why they started and the exit code"
  },
  {
    name: "winddown.shutdown.duration",
    kind: "histogram",
    unit: "s",
    attributes: ["winddown.reason"],
    description: "From the start of the shutdown to its report"
  },
  {
    name: "winddown.phase.duration",
    kind: "histogram",
    unit: "s",
    attributes: ["winddown.phase"],
    description: "How long each phase took"
  },
  {
    name: "winddown.steps",
    kind: "counter",
    unit: "{step}",
    attributes: ["winddown.phase", "winddown.step.outcome"],
    description: "Steps run, by phase and outcome (ok, failed, timedOut, interrupted)"
  },
  {
    name: "winddown.drain.in_flight",
    kind: "gauge",
    unit: "{unit}",
    attributes: ["winddown.drain"],
    description: "Work in flight per drain, worker or HTTP server, sampled at each progress tick during the drain"
  },
  {
    name: "winddown.drain.refused",
    kind: "counter",
    unit: "{unit}",
    attributes: ["winddown.drain"],
    description: "Work refused because its drain had closed"
  },
  {
    name: "winddown.http.served_while_closing",
    kind: "counter",
    unit: "{request}",
    attributes: ["winddown.http.server"],
    description: "HTTP responses finished after closing began (with Connection: close)"
  },
  {
    name: "winddown.http.connections_destroyed",
    kind: "counter",
    unit: "{connection}",
    attributes: ["winddown.http.server"],
    description: "HTTP connections still open at the end of the drain, destroyed"
  }
] as const satisfies ReadonlyArray<Definition>

/**
 * The name a metric has in Prometheus, by OpenTelemetry's rules for
 * Prometheus exporters: dots become underscores, a unit in seconds becomes
 * the suffix `_seconds` (annotations such as `{step}` are dropped), and
 * counters end in `_total`. `winddown.shutdowns` is `winddown_shutdowns_total`,
 * `winddown.phase.duration` is `winddown_phase_duration_seconds` (with
 * `_bucket`, `_sum` and `_count` series).
 *
 * @since 0.1.0
 * @category models
 */
export const prometheusName = (definition: Definition): string => {
  const base = definition.name.replace(/[^a-zA-Z0-9_:]/g, "_")
  const unit = definition.unit === "s" ? "_seconds" : ""
  return `${base}${unit}${definition.kind === "counter" ? "_total" : ""}`
}

const prometheusNames: ReadonlyMap<string, string> = new Map(definitions.map((d) => [d.name, prometheusName(d)]))

/**
 * A `metricNameMapper` for effect's `PrometheusMetrics`: winddown's metrics
 * get their {@link prometheusName}, any other name is left as it is.
 *
 * @since 0.1.0
 * @category models
 */
export const prometheusNameMapper = (name: string): string => prometheusNames.get(name) ?? name

/**
 * A metric's options from its definition. The unit travels as the `unit`
 * attribute, effect's convention: its OTLP exporter sends it as the metric's
 * unit, its Prometheus formatter leaves it out of the labels. Counters only
 * go up (`incremental`), so OTLP receives them as monotonic sums, i.e.
 * counters, not up-down counters.
 */
const optionsOf = (name: (typeof definitions)[number]["name"]) => {
  const d = definitions.find((d) => d.name === name)!
  return {
    description: `${d.description} (${d.unit})`,
    attributes: { unit: d.unit },
    ...(d.kind === "counter" ? { incremental: true } : {})
  }
}

/**
 * @since 0.1.0
 * @category metrics
 */
export const shutdowns = Metric.counter("winddown.shutdowns", optionsOf("winddown.shutdowns"))

/**
 * @since 0.1.0
 * @category metrics
 */
export const shutdownDuration = Metric.histogram("winddown.shutdown.duration", {
  ...optionsOf("winddown.shutdown.duration"),
  boundaries: secondsBoundaries
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const phaseDuration = Metric.histogram("winddown.phase.duration", {
  ...optionsOf("winddown.phase.duration"),
  boundaries: secondsBoundaries
})

/**
 * @since 0.1.0
 * @category metrics
 */
export const steps = Metric.counter("winddown.steps", optionsOf("winddown.steps"))

/**
 * @since 0.1.0
 * @category metrics
 */
export const inFlight = Metric.gauge("winddown.drain.in_flight", optionsOf("winddown.drain.in_flight"))

/**
 * @since 0.1.0
 * @category metrics
 */
export const refused = Metric.counter("winddown.drain.refused", optionsOf("winddown.drain.refused"))

/**
 * @since 0.1.0
 * @category metrics
 */
export const servedWhileClosing = Metric.counter("winddown.http.served_while_closing", optionsOf("winddown.http.served_while_closing"))

/**
 * @since 0.1.0
 * @category metrics
 */
export const connectionsDestroyed = Metric.counter("winddown.http.connections_destroyed", optionsOf("winddown.http.connections_destroyed"))
