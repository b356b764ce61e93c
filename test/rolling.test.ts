// Rolling restarts for real: three replicas of the rolling bench's winddown
// job service (the demo itself, demo/main.ts with DATABASE_URL, on PostgreSQL) behind a real
// HAProxy, replaced one at a time twice over (SIGTERM, wait for the exit, start
// a new one, wait for /readyz) under keep-alive load and job submissions,
// through the same harness as `npm run bench:rolling`. Asserted for winddown
// only (the alternatives' figures are the bench's business): no failed
// request of any kind, no accepted job lost, none completed twice, and every
// replica exits by itself with code 0.
//
// Needs PostgreSQL (requireServices) and HAProxy: without /usr/sbin/haproxy
// the test is skipped, saying so, except in CI (CI set), where it fails:
// .ci/run installs haproxy.
import { assert, describe, it } from "@effect/vitest"
import * as HAProxy from "../bench/rolling/haproxy.ts"
import * as Harness from "../bench/rolling/harness.ts"
import { isCI, postgresUrl, requireServices } from "./support/services.ts"

const services = await requireServices(["postgres"])
const installed = HAProxy.available()
const howToEnable = "install it with `apt-get install -y haproxy` (or set HAPROXY to its path)"
if (!installed && !isCI()) {
  process.stderr.write(`\n[rolling.test] SKIPPED: ${HAProxy.binary} is not installed; ${howToEnable} to run the rolling-restart test.\n\n`)
}

describe.runIf(services.ok && (installed || isCI()))("rolling restarts behind HAProxy", () => {
  it("winddown: 2 full rolls of 3 replicas, no failed request, no job lost or completed twice, every exit 0", async () => {
    assert.isTrue(installed, `CI must run the rolling-restart test, but ${HAProxy.binary} is missing: .ci/run should ${howToEnable}`)
    const lines: Array<string> = []
    const r = await Harness.runContender("winddown", {
      replicas: 3,
      rolls: 2,
      connections: 8,
      jobEveryMs: 150,
      gapMs: 300,
      settleMs: 1_000,
      // A 6 s budget: a 1.3 s drain, so 4-8 s jobs are checkpointed and
      // resumed by another replica after about 1 s (and the test stays short).
      graceMs: 6_000,
      jobsTimeoutMs: 40_000,
      databaseUrl: postgresUrl,
      log: (line) => lines.push(line)
    })
    const context = `\n${lines.join("\n")}\nfailures: ${JSON.stringify(r.failureSamples)}`
    assert.strictEqual(r.rolls, 2)
    assert.strictEqual(r.restarts.length, 6)
    assert.isAbove(r.requests, 2_000, `too little load to say anything${context}`)
    assert.deepStrictEqual(r.failedByKind, { reset: 0, "5xx": 0, timeout: 0, cut: 0, refused: 0, other: 0 }, `failed requests${context}`)
    assert.strictEqual(r.failed, 0)
    assert.isAbove(r.jobs.accepted, 50, context)
    assert.strictEqual(r.jobs.lost, 0, `jobs lost${context}`)
    assert.strictEqual(r.jobs.completedTwice, 0, `jobs completed twice${context}`)
    assert.strictEqual(r.jobs.completed, r.jobs.accepted)
    // 6 replaced during the rolls and the 3 stopped at the end.
    assert.strictEqual(r.replicas.length, 9)
    for (const replica of r.replicas) {
      assert.isNotTrue(replica.killed, `${replica.name} #${replica.generation} had to be killed${context}`)
      assert.strictEqual(replica.exitCode, 0, `${replica.name} #${replica.generation} exited with ${replica.exitCode ?? replica.exitSignal}${context}`)
    }
    assert.strictEqual(r.haproxy.retries, 0)
    console.log(`rolling: ${r.requests} requests, ${r.jobs.accepted} jobs (${r.jobs.ranMoreThanOnce} resumed), exits ${r.replicas.map((p) => Math.round(p.timeToExitMs ?? 0)).join(", ")} ms, ready after ${r.replicas.map((p) => Math.round((p.readyAt ?? 0) - p.startedAt)).join(", ")} ms; load ${(r.durationMs / 1000).toFixed(0)} s; ${r.startFailures.length} replica(s) died before ready and were started again`)
  }, 240_000)
})
