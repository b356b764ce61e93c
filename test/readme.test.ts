// The README's options and exit-code tables must say what the code does:
// every default is compared with the value in the code's `defaults` objects.
import { assert, describe, it } from "@effect/vitest"
import { AmqpConsumer } from "../src/amqp/index.ts"
import { BullWorker } from "../src/bullmq/index.ts"
import { Budget, Drain, Health, Resource, Shutdown, ShutdownConfig, ShutdownMetrics, Worker } from "../src/index.ts"
import { JetStreamConsumer } from "../src/nats/index.ts"
import { NodeCluster, NodeHealth, NodeHttpDrain, NodeShutdown } from "../src/node/index.ts"
import { readme, table } from "./support/readme.ts"

const share = (phase: keyof typeof Budget.defaults.phases) => {
  const { max, share } = Budget.defaults.phases[phase]
  return `min(${max}, ${share * 100}% of timeout)`
}

const expected: Record<string, string> = {
  timeout: Budget.defaults.timeout,
  readiness: share("readiness"),
  preStop: NodeShutdown.defaults.preStop,
  stopAccepting: share("stopAccepting"),
  drain: "the rest",
  cleanup: share("cleanup"),
  flush: share("flush"),
  stepTimeout: "none",
  forcedStepTimeout: Shutdown.defaults.forcedStepTimeout,
  signalExit: Shutdown.defaults.signalExit,
  progressInterval: Shutdown.defaults.progressInterval,
  forcedExitCode: String(Shutdown.defaults.forcedExitCode),
  deadlineExitCode: String(Shutdown.defaults.deadlineExitCode),
  signals: NodeShutdown.defaults.signals.join(","),
  forceOnSignal: String(NodeShutdown.defaults.forceOnSignal),
  exitOnSignal: String(NodeShutdown.defaults.exitOnSignal),
  repeatWindow: NodeShutdown.defaults.repeatWindow,
  handleUncaught: String(NodeShutdown.defaults.handleUncaught),
  reportJson: String(NodeShutdown.defaults.reportJson),
  reportSummary: String(NodeShutdown.defaults.reportSummary),
  reportTo: NodeShutdown.defaults.reportTo,
  watchdog: String(NodeShutdown.defaults.watchdog),
  exitGrace: NodeShutdown.defaults.exitGrace,
  interruptProgram: "true",
  ipc: String(NodeShutdown.defaults.ipc)
}

describe("README", () => {
  it("the options table lists every option with the code's default and variable", () => {
    const rows = table("options")
    assert.deepStrictEqual(rows.map((r) => r[0]!.replaceAll("`", "")).sort(), Object.keys(expected).sort())
    for (const [option, variable, defaultValue, meaning] of rows) {
      const name = option!.replaceAll("`", "")
      assert.strictEqual(defaultValue, expected[name], `default of ${name}`)
      const envName = (ShutdownConfig.variables as Record<string, string>)[name]
      assert.strictEqual(variable!.replaceAll("`", ""), envName ?? "", `variable of ${name}`)
      if (name === "preStop") {
        assert.include(meaning, `${NodeShutdown.defaults.kubernetesPreStop} when \`KUBERNETES_SERVICE_HOST\``)
        assert.include(meaning, `\`Shutdown.layer\`: ${Budget.defaults.preStop}`)
      }
    }
  })

  const modules: Record<string, Readonly<Record<string, unknown>>> = {
    NodeHttpDrain: NodeHttpDrain.defaults,
    Health: Health.defaults,
    NodeHealth: NodeHealth.defaults,
    NodeCluster: NodeCluster.defaults,
    Drain: Drain.defaults,
    Worker: Worker.defaults,
    BullWorker: BullWorker.defaults,
    AmqpConsumer: AmqpConsumer.defaults,
    JetStreamConsumer: JetStreamConsumer.defaults,
    Resource: Resource.defaults
  }
  for (const [name, defaults] of Object.entries(modules)) {
    it(`the ${name} table gives the code's defaults`, () => {
      const rows = table(`defaults:${name}`)
      assert.isAbove(rows.length, 0)
      for (const [option, defaultValue] of rows) {
        const key = option!.replaceAll("`", "")
        assert.property(defaults, key, `${name}.defaults has no ${key}`)
        assert.strictEqual(defaultValue, String(defaults[key]), `${name} default of ${key}`)
      }
    })
  }

  it("the metrics table is ShutdownMetrics.definitions, with each metric's Prometheus name", () => {
    const plain = (cell: string) => cell.replaceAll("`", "")
    assert.deepStrictEqual(
      table("metrics").map((row) => row.map(plain)),
      ShutdownMetrics.definitions.map((d) => [
        d.name,
        d.kind,
        d.unit,
        d.attributes.join(", "),
        d.description,
        ShutdownMetrics.prometheusName(d)
      ])
    )
  })

  it("every environment variable is documented", () => {
    for (const variable of Object.values(ShutdownConfig.variables)) assert.include(readme, `\`${variable}\``)
  })

  it("the exit-code table matches the code", () => {
    const rows = Object.fromEntries(table("exit-codes").map(([what, code]) => [what, code]))
    assert.include(rows["a second signal forced the shutdown"], `${Shutdown.defaults.forcedExitCode} (\`forcedExitCode\`)`)
    assert.include(rows["the hard deadline passed (watchdog)"], `${Shutdown.defaults.deadlineExitCode} (\`deadlineExitCode\`)`)
    assert.match(rows["a signal, and the shutdown ran"]!, /^0 /)
    assert.strictEqual(Shutdown.defaults.signalExit, "success")
  })
})
