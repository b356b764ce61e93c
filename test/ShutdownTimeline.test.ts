// ShutdownTimeline: what the SVG contains, that it is well-formed whatever
// the names say, that it stays bounded and deterministic, and that reports
// are picked out of logs. How it looks in a browser (overlaps, sizes) is
// test/timeline.browser.test.ts.
import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { ShutdownReport, ShutdownTimeline } from "../src/index.ts"
import { TestShutdown } from "../src/testing/index.ts"
import { clean, forced, hostile, many, representative, watchdog } from "./support/timelineReports.ts"

/**
 * A strict well-formedness check for what toSvg writes: tags balance, only
 * the elements it means to write, attributes quoted, no stray `<` or `&`.
 */
const checkXml = (svg: string): void => {
  const allowed = new Set(["svg", "title", "desc", "defs", "pattern", "style", "rect", "g", "text", "line", "path"])
  const stack: Array<string> = []
  const token = /<(\/?)([A-Za-z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y
  let i = 0
  while (i < svg.length) {
    const lt = svg.indexOf("<", i)
    const chunk = svg.slice(i, lt < 0 ? svg.length : lt)
    assert.notMatch(chunk, /&(?!(amp|lt|gt|quot|apos);)/, `a bare & in text: ${chunk.slice(0, 80)}`)
    assert.notInclude(chunk, ">", `a bare > in text: ${chunk.slice(0, 80)}`)
    if (lt < 0) break
    token.lastIndex = lt
    const m = token.exec(svg)
    assert.isNotNull(m, `not a tag at ${lt}: ${svg.slice(lt, lt + 80)}`)
    const [whole, close, name, attrs, selfClose] = m!
    assert.isTrue(allowed.has(name!), `unexpected element <${name}>`)
    assert.notMatch(attrs!, /&(?!(amp|lt|gt|quot|apos);)/, `a bare & in attributes of <${name}>`)
    if (close) assert.strictEqual(stack.pop(), name, `</${name}> closes something else`)
    else if (!selfClose) stack.push(name!)
    i = lt + whole.length
  }
  assert.deepStrictEqual(stack, [], "unclosed elements")
  // Nothing XML 1.0 cannot carry.
  assert.notMatch(svg, /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/)
  assert.notMatch(svg, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/, "no lone surrogates")
}

const viewBox = (svg: string) => {
  const m = /viewBox="0 0 (\d+) (\d+)"/.exec(svg)
  assert.isNotNull(m)
  return { width: Number(m![1]), height: Number(m![2]) }
}

/** Every x/y/width coordinate the SVG states is a finite number inside its viewBox. */
const checkCoordinates = (svg: string) => {
  const { width, height } = viewBox(svg)
  for (const [, attr, value] of svg.matchAll(/\s(x|x1|x2|cx|y|y1|y2|cy|width|height)="([^"]*)"/g)) {
    const n = Number(value)
    assert.isTrue(Number.isFinite(n), `${attr}="${value}" is not a number`)
    const max = attr!.startsWith("x") || attr === "width" ? width : height
    assert.isTrue(n >= 0 && n <= max, `${attr}="${value}" outside 0..${max}`)
  }
  for (const [, d] of svg.matchAll(/\sd="([^"]*)"/g)) assert.notMatch(d!, /NaN|Infinity/)
}

const texts = (svg: string): Array<string> =>
  Array.from(svg.matchAll(/<text[^>]*>(?:<title>[^<]*<\/title>)?([^<]*)<\/text>/g), (m) => m[1]!)

describe("ShutdownTimeline.toSvg", () => {
  it("draws a standalone, accessible SVG: role img, a title saying reason, duration and exit code", () => {
    const svg = ShutdownTimeline.toSvg(clean)
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" [^>]*role="img"/)
    assert.match(svg, /aria-labelledby="wd-title wd-desc"/)
    assert.include(svg, `<title id="wd-title">Shutdown: signal SIGTERM · 3.01 s of 25 s · exit code 0</title>`)
    assert.match(svg, /<desc id="wd-desc">[^<]*started 2026-01-01T00:00:00\.000Z · 8 steps: 8 ok<\/desc>/)
    checkXml(svg)
    checkCoordinates(svg)
  })

  it("has the six phases in order, each with its time used and allowance, and every step by name", () => {
    const shown = texts(ShutdownTimeline.toSvg(clean))
    const headings = shown.filter((t) => /^\d [a-zA-Z]{4,}$/.test(t))
    assert.deepStrictEqual(headings, ["1 readiness", "2 preStop", "3 stopAccepting", "4 drain", "5 cleanup", "6 flush"])
    for (const s of ShutdownReport.steps(clean)) assert.include(shown, s.name)
    assert.include(shown, "3 s of 17 s") // drain
    assert.include(shown, "0 ms of 0 ms") // preStop, zero everything
  })

  it("marks the signal, the end and the hard deadline; a forced report also the escalation", () => {
    const cleanTexts = texts(ShutdownTimeline.toSvg(clean))
    assert.includeMembers(cleanTexts, ["SIGTERM", "end 3.01 s, exit 0", "hard deadline 25 s"])
    assert.notInclude(cleanTexts.join("\n"), "forced")
    const forcedTexts = texts(ShutdownTimeline.toSvg(forced))
    assert.includeMembers(forcedTexts, ["SIGINT: forced at 1.2 s", "1.2 s of 17 s · forced", "1.2 s interrupted", "228 ms failed", "0 ms skipped"])
  })

  it("colors steps by outcome, and the legend names every outcome", () => {
    const svg = ShutdownTimeline.toSvg(forced)
    assert.include(svg, `fill="${ShutdownTimeline.outcomeColors.failed}"`)
    assert.include(svg, `fill="${ShutdownTimeline.outcomeColors.interrupted}"`)
    const legend = texts(svg.slice(svg.indexOf(`<g class="legend">`)))
    assert.deepStrictEqual(legend.slice(0, 6), ["ok", "failed", "timed out", "interrupted", "skipped", "still running"])
    assert.includeMembers(legend, ["phase allowance", "phase time used", "step allowance"])
  })

  it("draws a watchdog's report: a running step (striped, open-ended), a phase never reached", () => {
    const svg = ShutdownTimeline.toSvg(watchdog)
    const shown = texts(svg)
    assert.include(shown, "2.99 s still running of 2 s")
    assert.include(svg, `fill="url(#wd-running)"`)
    assert.include(shown, "not reached") // flush
    assert.include(shown, "2 s timed out") // its own limit is not in the report: no "of"
    checkXml(svg)
    checkCoordinates(svg)
  })

  it("uses a step's own timeout or allowance and start when the report has them", () => {
    const report: ShutdownTimeline.Report = {
      ...clean,
      phases: clean.phases.map((p) =>
        p.phase !== "cleanup" ? p : {
          ...p,
          durationMs: 700,
          outcome: "timedOut",
          steps: [{ name: "close pool", outcome: "timedOut", durationMs: 500, timeoutMs: 500, startMs: 3200 }]
        }
      )
    }
    const svg = ShutdownTimeline.toSvg(report)
    assert.include(texts(svg), "500 ms timed out of 500 ms")
    assert.include(svg, "cleanup: timed out after 500 ms, allowed 500 ms, started at 3.2 s")
  })

  it("draws drain counts over time as a step chart under the drain, only when the report has samples", () => {
    const svg = ShutdownTimeline.toSvg(forced)
    assert.include(svg, `<g class="samples">`)
    assert.includeMembers(texts(svg), ["in flight", "jobs (peak 3)", "http requests (peak 4)", "emails (peak 1)"])
    // under the drain's lanes, before the cleanup heading
    assert.isBelow(svg.indexOf(`<g class="samples">`), svg.indexOf(">5 cleanup<"))
    assert.isAbove(svg.indexOf(`<g class="samples">`), svg.indexOf(">emails<"))
    assert.notInclude(ShutdownTimeline.toSvg(clean), `class="samples"`)
  })

  it("escapes every text: markup, quotes, control characters and lone surrogates in names and reasons", () => {
    const svg = ShutdownTimeline.toSvg(hostile)
    checkXml(svg)
    checkCoordinates(svg)
    assert.notInclude(svg, "<script")
    assert.notInclude(svg, "<b>")
    assert.include(svg, "&lt;/text&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;quotes&apos;")
    assert.include(svg, "zero &lt;b&gt;&amp;amp;&lt;/b&gt;")
    assert.strictEqual(ShutdownTimeline.escapeXml(`<a href="x">&'\u0000\ud800`), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;\uFFFD\uFFFD")
  })

  it("truncates long names with an ellipsis and keeps the whole name in a tooltip", () => {
    const svg = ShutdownTimeline.toSvg(hostile)
    const long = "x".repeat(400)
    const shown = texts(svg).find((t) => t.startsWith("xxxx"))!
    assert.isBelow(shown.length, 60)
    assert.isTrue(shown.endsWith("…"))
    assert.include(svg, `<title>${long}\n`)
    // the title line too, with the whole reason in its tooltip
    const title = texts(svg)[0]!
    assert.isTrue(title.endsWith("…"))
    assert.include(svg, "very long message very long message very long message very long message")
  })

  it("survives zero durations, durations past the timeout, NaN and negatives, unknown phases and outcomes", () => {
    const svg = ShutdownTimeline.toSvg(hostile)
    const shown = texts(svg)
    assert.include(shown.join("\n"), "ran 2.5 s past the hard deadline")
    assert.include(shown, "teardownOfTheFuture") // an unknown phase after the six
    assert.include(shown, "500 ms of 100 ms · somethingNew")
    assert.include(shown, "50 ms mystery")
    // zero-length bars are still visible
    for (const [, w] of svg.matchAll(/<rect x="[^"]*" y="[^"]*" width="([^"]*)" height="9"/g)) assert.isAtLeast(Number(w), 1)
  })

  it("keeps hundreds of steps readable: at most maxStepsPerPhase lanes a phase, the rest counted in one lane", () => {
    const svg = ShutdownTimeline.toSvg(many(200))
    checkXml(svg)
    checkCoordinates(svg)
    const lanes = svg.match(/<g class="step">/g)!.length
    assert.strictEqual(lanes, 2 * (ShutdownTimeline.defaults.maxStepsPerPhase - 1))
    const shown = texts(svg)
    assert.include(shown, "139 more steps")
    assert.include(shown, "39 more steps")
    // the lanes it keeps show each kind of trouble
    const drainLabels = shown.filter((t) => / (failed|timed out|interrupted)/.test(t))
    for (const kind of ["failed", "timed out", "interrupted"]) assert.isTrue(drainLabels.some((t) => t.includes(kind)), kind)
    assert.isBelow(viewBox(svg).height, 1000)
    // 10,000 steps: same height, bounded size
    const huge = ShutdownTimeline.toSvg(many(10_000))
    assert.isBelow(viewBox(huge).height, 1000)
    assert.isBelow(huge.length, 2_000_000)
    assert.strictEqual(ShutdownTimeline.toSvg(many(200), { maxStepsPerPhase: 4 }).match(/<g class="step">/g)!.length, 6)
  })

  it("is deterministic: the same report (or a copy of it) gives the same bytes", () => {
    for (const [, report] of representative) {
      const a = ShutdownTimeline.toSvg(report)
      assert.strictEqual(ShutdownTimeline.toSvg(structuredClone(report)), a)
      assert.strictEqual(ShutdownTimeline.toSvg(report), a)
    }
  })

  it("takes a width and an id prefix; ids stay valid whatever the prefix", () => {
    const svg = ShutdownTimeline.toSvg(watchdog, { width: 1400, idPrefix: "a b\"<c" })
    assert.strictEqual(viewBox(svg).width, 1400)
    assert.include(svg, `fill="url(#abc-running)"`)
    assert.strictEqual(viewBox(ShutdownTimeline.toSvg(clean, { width: 10 })).width, 560)
    checkXml(svg)
  })

  it("stacks several reports in one SVG with toSvgAll, each with its own title and ids", () => {
    const svg = ShutdownTimeline.toSvgAll([clean, forced])
    checkXml(svg)
    assert.strictEqual(svg.match(/<svg /g)!.length, 3)
    assert.include(svg, `<title id="wd-all-title">2 shutdowns</title>`)
    assert.include(svg, `id="wd1-title"`)
    assert.include(svg, `id="wd2-title"`)
    const heights = Array.from(svg.matchAll(/<svg x="0" y="(\d+)" width="\d+" height="(\d+)"/g), (m) => [Number(m[1]), Number(m[2])])
    assert.strictEqual(heights[1]![0], heights[0]![1]! + 24)
  })

  it.effect("draws a report the core really built (TestShutdown under TestClock)", () =>
    Effect.gen(function*() {
      const { runToReport, shutdown } = yield* TestShutdown.make({ timeout: "10 seconds" })
      yield* shutdown.addStep("requests", Effect.sleep("2 seconds"), { phase: "drain" })
      yield* shutdown.addStep("hung pool", Effect.never, { timeout: "1 second" })
      yield* shutdown.addStep("metrics", Effect.void, { phase: "flush" })
      const report = yield* runToReport({ reason: "deploy" })
      const svg = ShutdownTimeline.toSvg(report)
      checkXml(svg)
      checkCoordinates(svg)
      const shown = texts(svg)
      assert.includeMembers(shown, ["requests", "hung pool", "metrics", "main program"])
      // The report carries each step's allowance (here its own 1 s timeout).
      assert.isTrue(shown.some((t) => t.includes("of 1 s") && t.includes("timed out")), shown.join(" | "))
      assert.include(texts(svg)[0]!, "Shutdown: trigger (deploy)")
    }))
})

describe("ShutdownTimeline.parseReports", () => {
  const newLine = (report: object, extra: object = {}) => JSON.stringify({ event: ShutdownTimeline.reportEvent, ...extra, ...report })

  it("picks both formats out of a log, with their line numbers, and ignores everything else", () => {
    const log = [
      "[demo] listening on http://localhost:3000",
      "[winddown] report: signal SIGTERM; 3.01 s of 25 s; exit code 0", // the summary, not JSON
      ShutdownReport.toJsonLine(clean),
      `{"level":"INFO","message":"hello"}`,
      "",
      newLine(forced, { level: "INFO", timestamp: "2026-01-01T00:00:00Z", fiber: "#1" }),
      `2026-01-01T00:00:01.000Z stdout F ${ShutdownReport.toJsonLine(clean)}`, // a collector's prefix
      JSON.stringify({ level: "INFO", message: ShutdownReport.toJsonLine(watchdog as ShutdownReport.ShutdownReport) }), // a JSON logger
      "{ not json at all"
    ].join("\r\n")
    const { reports, errors } = ShutdownTimeline.parseReports(log)
    assert.deepStrictEqual(errors, [])
    assert.deepStrictEqual(reports.map((r) => r.line), [3, 6, 7, 8])
    assert.deepStrictEqual(reports.map((r) => r.report.exitCode), [0, 125, 0, 124])
  })

  it("reads back what toJsonLine wrote: the drawing is the same as from the report itself", () => {
    const { reports } = ShutdownTimeline.parseReports(ShutdownReport.toJsonLine(clean))
    assert.strictEqual(ShutdownTimeline.toSvg(reports[0]!.report), ShutdownTimeline.toSvg(clean))
    const again = ShutdownTimeline.parseReports(newLine(forced)).reports[0]!.report
    assert.strictEqual(ShutdownTimeline.toSvg(again), ShutdownTimeline.toSvg(forced))
  })

  it("accepts fields it does not know, a running step and samples", () => {
    const { reports, errors } = ShutdownTimeline.parseReports(newLine({ ...watchdog, version: 2, phases: watchdog.phases.map((p) => ({ ...p, spanId: "abc" })) }))
    assert.deepStrictEqual(errors, [])
    assert.strictEqual(reports[0]!.report.phases[4]!.steps[1]!.outcome, "running")
    assert.lengthOf(ShutdownTimeline.parseReports(newLine(forced)).reports[0]!.report.samples!, 13)
  })

  it("lists report lines it cannot read, with the line and what is wrong, in one line each", () => {
    const log = [
      `[winddown] report {"reason":`,
      `{"event":"winddown.report", "phases": [}`,
      newLine({ ...clean, phases: "none" }),
      `[winddown] report ${JSON.stringify({ ...clean, durationMs: "3 s" })}`
    ].join("\n")
    const { reports, errors } = ShutdownTimeline.parseReports(log)
    assert.deepStrictEqual(reports, [])
    assert.deepStrictEqual(errors.map((e) => e.line), [1, 2, 3, 4])
    assert.match(errors[0]!.message, /^the JSON after "\[winddown\] report" is malformed/)
    assert.match(errors[1]!.message, /^the report is not valid JSON/)
    assert.match(errors[2]!.message, /^not a shutdown report: Expected array at \["phases"\]$/)
    assert.match(errors[3]!.message, /durationMs/)
    for (const e of errors) assert.notInclude(e.message, "\n")
  })

  it("decode says in one line why a value is not a report", () => {
    const r = ShutdownTimeline.decode({ reason: { _tag: "signal" } })
    assert.isTrue(Result.isFailure(r))
    assert.notInclude(Result.isFailure(r) ? r.failure : "", "\n")
    assert.isTrue(Result.isSuccess(ShutdownTimeline.decode(JSON.parse(JSON.stringify(clean)))))
  })
})
