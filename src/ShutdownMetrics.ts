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

type Name = (typeof definitions)[number]["name"]

/**
 * A metric from its definition, with `attributes` besides its unit. The unit
 * travels as the `unit` attribute, effect's convention: its OTLP exporter
 * sends it as the metric's unit, its Prometheus formatter leaves it out of
 * the labels. Counters only go up (`incremental`), so OTLP receives them as
 * monotonic sums, i.e. counters, not up-down counters.
 */
const make = (name: Name, attributes: Readonly<Record<string, string>> = {}): Metric.Metric<number, unknown> => {
  const d = definitions.find((d) => d.name === name)!
  const options = { description: `${d.description} (${d.unit})`, attributes: { unit: d.unit, ...attributes } }
  switch (d.kind) {
    case "counter":
      return Metric.counter(name, { ...options, incremental: true })
    case "gauge":
      return Metric.gauge(name, options)
    case "histogram":
      return Metric.histogram(name, { ...options, boundaries: secondsBoundaries })
  }
}

const made = new Map<string, Metric.Metric<number, unknown>>()

/**
 * One series of a winddown metric: the metric with these attributes, the
 * very series winddown updates (`Metric.withAttributes(ShutdownMetrics.steps,
 * attributes)` addresses it too). Made once per attribute set and kept:
 * effect's `withAttributes` builds a new metric and a new context on every
 * update, which cost a shutdown about 0.2 ms for a dozen updates; winddown's
 * attribute sets are few (a phase, an outcome, a reason, an exit code, a
 * drain's name).
 *
 * @since 0.1.0
 * @category metrics
 */
export const series = (name: Name, attributes: Readonly<Record<string, string>>): Metric.Metric<number, unknown> => {
  let key = name
  for (const attribute in attributes) key += `\u0000${attribute}\u0000${attributes[attribute]}`
  let metric = made.get(key)
  if (metric === undefined) {
    metric = make(name, attributes)
    made.set(key, metric)
  }
  return metric
}

/**
 * @since 0.1.0
 * @category metrics
 */
export const shutdowns = make("winddown.shutdowns") as Metric.Counter<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const shutdownDuration = make("winddown.shutdown.duration") as Metric.Histogram<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const phaseDuration = make("winddown.phase.duration") as Metric.Histogram<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const steps = make("winddown.steps") as Metric.Counter<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const inFlight = make("winddown.drain.in_flight") as Metric.Gauge<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const refused = make("winddown.drain.refused") as Metric.Counter<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const servedWhileClosing = make("winddown.http.served_while_closing") as Metric.Counter<number>

/**
 * @since 0.1.0
 * @category metrics
 */
export const connectionsDestroyed = make("winddown.http.connections_destroyed") as Metric.Counter<number>
