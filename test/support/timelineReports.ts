/**
 * Reports to draw in the timeline tests: the shapes a shutdown really takes
 * (clean, forced by a second signal, stopped by the watchdog with steps still
 * running, hundreds of steps) and a hostile one. Plain data, so the unit and
 * the browser tests draw exactly the same thing.
 */
import type { ShutdownReport, ShutdownTimeline } from "../../src/index.ts"

type Step = ShutdownTimeline.Step
type PhaseName = ShutdownTimeline.PhaseReport["phase"]

const phase = (
  name: PhaseName,
  startMs: number,
  durationMs: number,
  allowanceMs: number,
  steps: ReadonlyArray<Step>,
  outcome: ShutdownTimeline.PhaseReport["outcome"] = "ok"
): ShutdownTimeline.PhaseReport => ({ phase: name, startMs, durationMs, allowanceMs, outcome, steps })

const step = (name: string, p: PhaseName, index: number, outcome: Step["outcome"], durationMs: number, detail?: string): Step => ({
  name,
  phase: p,
  index,
  outcome,
  durationMs,
  ...(detail === undefined ? {} : { detail })
})

/** The demo's kind of shutdown: one job drains for 3 s, every step ok. A `ShutdownReport` as the core builds it today. */
export const clean: ShutdownReport.ShutdownReport = {
  reason: { _tag: "signal", signal: "SIGTERM" },
  startedAt: 1_767_225_600_000,
  durationMs: 3012,
  timeoutMs: 25_000,
  phases: [
    { phase: "readiness", startMs: 0, durationMs: 2, allowanceMs: 1000, outcome: "ok", steps: [{ name: "http: connection close", phase: "readiness", index: 1, outcome: "ok", durationMs: 1 }] },
    { phase: "preStop", startMs: 2, durationMs: 0, allowanceMs: 0, outcome: "ok", steps: [] },
    {
      phase: "stopAccepting", startMs: 2, durationMs: 3, allowanceMs: 2000, outcome: "ok",
      steps: [
        { name: "http: close listener", phase: "stopAccepting", index: 1, outcome: "ok", durationMs: 1 },
        { name: "jobs: stop taking", phase: "stopAccepting", index: 2, outcome: "ok", durationMs: 0 }
      ]
    },
    {
      phase: "drain", startMs: 5, durationMs: 3001, allowanceMs: 17_000, outcome: "ok",
      steps: [
        { name: "main program", phase: "drain", index: 1, outcome: "ok", durationMs: 0 },
        { name: "http: drain requests", phase: "drain", index: 2, outcome: "ok", durationMs: 2 },
        { name: "jobs", phase: "drain", index: 3, outcome: "ok", durationMs: 3001 }
      ]
    },
    { phase: "cleanup", startMs: 3006, durationMs: 4, allowanceMs: 5000, outcome: "ok", steps: [{ name: "close journal", phase: "cleanup", index: 1, outcome: "ok", durationMs: 4 }] },
    { phase: "flush", startMs: 3010, durationMs: 2, allowanceMs: 2000, outcome: "ok", steps: [{ name: "probe server", phase: "flush", index: 1, outcome: "ok", durationMs: 2 }] }
  ],
  sections: [{ name: "worker jobs", data: { taken: 1, completed: 1, requeued: 0 } }],
  exitCode: 0
}

/** Ctrl+C twice: the drain is cut at 1.2 s, a checkpoint runs, a cleanup step fails; drain counts recorded. */
export const forced: ShutdownTimeline.Report = {
  reason: { _tag: "signal", signal: "SIGINT" },
  startedAt: 1_767_225_600_000,
  durationMs: 1450,
  timeoutMs: 25_000,
  forced: { signal: "SIGINT", atMs: 1200 },
  phases: [
    phase("readiness", 0, 1, 1000, [step("http: connection close", "readiness", 1, "ok", 0)]),
    phase("preStop", 1, 0, 0, []),
    phase("stopAccepting", 1, 2, 2000, [step("http: close listener", "stopAccepting", 1, "ok", 1), step("jobs: stop taking", "stopAccepting", 2, "ok", 0)]),
    phase("drain", 3, 1197, 17_000, [
      step("main program", "drain", 1, "ok", 0),
      step("http: drain requests", "drain", 2, "ok", 310),
      step("jobs", "drain", 3, "interrupted", 1197, "interrupted by SIGINT"),
      step("emails", "drain", 4, "interrupted", 1197, "interrupted by SIGINT")
    ], "forced"),
    phase("cleanup", 1200, 240, 5000, [
      step("close journal", "cleanup", 1, "ok", 12),
      step("upload logs", "cleanup", 2, "failed", 228, "bucket unreachable: connect ECONNREFUSED 127.0.0.1:9000"),
      step("db pool", "cleanup", 3, "skipped", 0)
    ]),
    phase("flush", 1440, 10, 2000, [step("probe server", "flush", 1, "ok", 10)])
  ],
  samples: Array.from({ length: 13 }, (_, i) => ({
    atMs: i * 100,
    inFlight: { jobs: i < 12 ? 3 : 0, "http requests": Math.max(0, 4 - i), emails: i < 12 ? 1 : 0 }
  })),
  exitCode: 125
}

/**
 * The watchdog's report: the budget was spent while the cleanup hung, so the
 * flush never ran and one step is still `running`; the drain timed out.
 */
export const watchdog: ShutdownTimeline.Report = {
  reason: { _tag: "signal", signal: "SIGTERM" },
  startedAt: 1_767_225_600_000,
  durationMs: 10_000,
  timeoutMs: 10_000,
  phases: [
    phase("readiness", 0, 1, 500, []),
    phase("preStop", 1, 5000, 5000, []),
    phase("stopAccepting", 5001, 4, 1000, [step("http: close listener", "stopAccepting", 1, "ok", 4)]),
    phase("drain", 5005, 2000, 2000, [
      step("main program", "drain", 1, "ok", 3),
      step("jobs", "drain", 2, "timedOut", 2000, "ran past its drain allowance"),
      step("a drain whose name is far too long to fit in the column on the left of the picture", "drain", 3, "ok", 800)
    ], "timedOut"),
    phase("cleanup", 7005, 2995, 2000, [
      step("close journal", "cleanup", 1, "ok", 2),
      { ...step("close db pool", "cleanup", 2, "running", 2993), timeoutMs: 5000 }
    ])
  ],
  budgetSpent: { atMs: 10_000, during: "cleanup" },
  sections: [],
  exitCode: 124
}

const outcomes: ReadonlyArray<Step["outcome"]> = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "failed", "timedOut", "interrupted", "skipped"]

/** 200 steps: 150 concurrent drains and 50 cleanup steps, every outcome. */
export const many = (count = 200): ShutdownReport.ShutdownReport => {
  const drains = Math.round(count * 0.75)
  const cleanups = count - drains
  const drainSteps = Array.from({ length: drains }, (_, i) => ({
    name: `queue consumer ${i + 1}`,
    phase: "drain" as const,
    index: i + 1,
    outcome: (outcomes[i % outcomes.length] === "skipped" ? "ok" : outcomes[i % outcomes.length]) as ShutdownReport.StepOutcome,
    durationMs: (i * 37) % 4000
  }))
  const cleanupSteps = Array.from({ length: cleanups }, (_, i) => ({
    name: `finalizer #${i + 1}`,
    phase: "cleanup" as const,
    index: i + 1,
    outcome: outcomes[(i * 3) % outcomes.length] as ShutdownReport.StepOutcome,
    durationMs: (i * 13) % 90
  }))
  const cleanupDuration = cleanupSteps.reduce((n, s) => n + s.durationMs, 0)
  return {
    reason: { _tag: "manual", message: "deploy 2026-01-01" },
    startedAt: 1_767_225_600_000,
    durationMs: 10 + 4000 + cleanupDuration + 5,
    timeoutMs: 30_000,
    phases: [
      { phase: "readiness", startMs: 0, durationMs: 5, allowanceMs: 1000, outcome: "ok", steps: [] },
      { phase: "preStop", startMs: 5, durationMs: 0, allowanceMs: 0, outcome: "ok", steps: [] },
      { phase: "stopAccepting", startMs: 5, durationMs: 5, allowanceMs: 2000, outcome: "ok", steps: [] },
      { phase: "drain", startMs: 10, durationMs: 4000, allowanceMs: 20_000, outcome: "timedOut", steps: drainSteps },
      { phase: "cleanup", startMs: 4010, durationMs: cleanupDuration, allowanceMs: 5000, outcome: "timedOut", steps: cleanupSteps },
      { phase: "flush", startMs: 4010 + cleanupDuration, durationMs: 5, allowanceMs: 2000, outcome: "ok", steps: [] }
    ],
    sections: [],
    exitCode: 0
  }
}

/**
 * Everything a drawing must survive: markup and control characters in names,
 * very long names and messages, zero durations, durations past the timeout,
 * a phase and an outcome this version does not know, fields it has never seen.
 */
const unknownFields = { futureField: { nested: [1, 2, 3] }, sections: [{ name: "<evil>", data: { "&": 1 } }] }

export const hostile: ShutdownTimeline.Report = {
  ...unknownFields,
  reason: { _tag: "uncaughtException", message: `</text><script>alert("x")</script> & 'quotes' \u0000\u0007 ${"very long message ".repeat(20)}` },
  startedAt: 1_767_225_600_000,
  durationMs: 12_500,
  timeoutMs: 10_000,
  phases: [
    phase("readiness", 0, 0, 0, [step("zero <b>&amp;</b>", "readiness", 1, "ok", 0)]),
    phase("preStop", 0, 0, 0, []),
    phase("stopAccepting", 0, 0, 0, [step("\u0001ctl\u001f \"q\" 'a' \ud800 lone surrogate", "stopAccepting", 1, "skipped", 0)]),
    phase("drain", 0, 12_000, 8000, [
      step(`${"x".repeat(400)}`, "drain", 1, "timedOut", 12_000, "ran past its hard deadline"),
      step("emoji 🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀", "drain", 2, "mystery", 50),
      { ...step("negative and NaN", "drain", 3, "ok", -5), startMs: Number.NaN }
    ], "timedOut"),
    phase("teardownOfTheFuture", 12_000, 500, 100, [step("future step", "teardownOfTheFuture", 1, "ok", 500)], "somethingNew")
  ],
  exitCode: 1
}

/** The representative reports the browser checks, by name. */
export const representative: ReadonlyArray<readonly [string, ShutdownTimeline.Report]> = [
  ["clean", clean],
  ["forced", forced],
  ["watchdog", watchdog],
  ["200 steps", many(200)],
  ["hostile", hostile]
]
