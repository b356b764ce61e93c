// The README's "Operating it" tables must say what the demo's code does.
import { assert, describe, it } from "@effect/vitest"
import { limits } from "../../demo/Api.ts"
import { limits as storeLimits } from "../../demo/JobStore.ts"
import { exitCodes } from "../../demo/Refusal.ts"
import { readme, table } from "../support/readme.ts"

describe("README, Operating it", () => {
  it("is a section of its own, before the rolling restarts and the comparison", () => {
    assert.match(readme, /\n## Operating it\n[\s\S]*?\n## Rolling restarts\n[\s\S]*?\n## Compared with the alternatives\n/)
  })

  it("the exit codes are the code's", () => {
    const codes = table("demo-exit-codes").map(([code]) => Number(code))
    assert.deepStrictEqual(codes, [exitCodes.setting, exitCodes.inUse, exitCodes.journal])
  })

  it("the limits are the code's", () => {
    const rows = Object.fromEntries(table("demo-limits").map(([what, value]) => [what, value]))
    assert.strictEqual(rows["request body (`POST /jobs`)"], `${limits.maxBodyBytes} bytes`)
    assert.strictEqual(rows["`ms` of a job (`POST /jobs`)"], `0 to ${storeLimits.maxJobMs}, a JSON integer`)
    assert.strictEqual(limits.maxJobMs, storeLimits.maxJobMs)
    assert.strictEqual(rows["`ms` of `GET /work?ms=`"], `0 to ${limits.maxWorkMs}, digits only, once (${limits.defaultWorkMs} when absent)`)
    assert.strictEqual(rows["request head"], `${limits.headersTimeoutMs} ms`)
    assert.strictEqual(rows["whole request, body included"], `${limits.requestTimeoutMs} ms`)
  })
})
