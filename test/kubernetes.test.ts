// The Kubernetes manifest and the demo's budget must agree: whoever edits one
// side only (the grace period, the preStop sleep, WINDDOWN_TIMEOUT) gets a
// failure that names the numbers.
import { assert, describe, it } from "@effect/vitest"
import { Result } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { parseAllDocuments } from "yaml"
import { Budget } from "../src/index.ts"
import { parseMillis } from "../src/internal/duration.ts"

const file = path.join(import.meta.dirname, "..", "examples", "kubernetes", "demo.yaml")
const docs = parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS())
const deployment = docs.find((d) => d.kind === "Deployment")
const pod = deployment.spec.template.spec
const container = pod.containers.find((c: any) => c.name === "demo")
const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value])) as Record<string, string>
const safetyMargin = "2 seconds"

describe("examples/kubernetes/demo.yaml", () => {
  it("preStop sleep + WINDDOWN_TIMEOUT + margin fit terminationGracePeriodSeconds", () => {
    const grace: number = pod.terminationGracePeriodSeconds
    const sleep = container.lifecycle.preStop.exec.command
    assert.strictEqual(sleep[0], "sleep", "the preStop hook is expected to be a sleep")
    const hookMs = Number(sleep[1]) * 1000
    const budget = Budget.validateKubernetes({
      terminationGracePeriodSeconds: grace,
      preStopHook: hookMs,
      safetyMargin,
      preStop: env.WINDDOWN_PRE_STOP as Budget.DurationInput
    })
    assert.isTrue(Result.isSuccess(budget), Result.isFailure(budget) ? budget.failure.message : "")
    const available = Result.getOrThrow(budget).timeoutMs
    const configured = parseMillis(env.WINDDOWN_TIMEOUT!)!
    assert.isAtMost(
      configured,
      available,
      `WINDDOWN_TIMEOUT=${env.WINDDOWN_TIMEOUT} but terminationGracePeriodSeconds ${grace} s - preStop sleep ${hookMs / 1000} s - margin 2 s leaves ${available / 1000} s: SIGKILL would cut the shutdown`
    )
    // the app must not wait again when the hook already did
    assert.strictEqual(parseMillis(env.WINDDOWN_PRE_STOP!), 0, "the pod has a preStop sleep: WINDDOWN_PRE_STOP must be 0s")
  })

  it("probes point at the winddown endpoints on the probe port the demo listens on", () => {
    assert.strictEqual(container.readinessProbe.httpGet.path, "/readyz")
    assert.strictEqual(container.livenessProbe.httpGet.path, "/livez")
    assert.strictEqual(container.startupProbe.httpGet.path, "/startupz")
    const probePort = container.ports.find((p: any) => p.name === "probes").containerPort
    assert.strictEqual(String(probePort), env.HEALTH_PORT)
    for (const probe of ["readinessProbe", "livenessProbe", "startupProbe"]) {
      assert.strictEqual(container[probe].httpGet.port, "probes")
    }
  })

  it("the container runs node directly, so SIGTERM reaches the service", () => {
    assert.strictEqual(container.command[0], "node")
  })
})
