// The timeline SVGs in a real browser: headless Chromium (Debian's
// `chromium`) opens each drawing as an SVG document and measures what it
// rendered. For a clean, a forced, a watchdog, a 200-step and a hostile
// report, and the README's figure: it parses as XML and renders without
// errors, no two texts overlap, every text lies inside the viewBox, and no
// text is smaller than 10 px at 100 %.
//
// Without /usr/bin/chromium the check is skipped, saying so, except in CI
// (CI set), where it fails: .ci/run installs chromium.
//
// Chromium runs as our own child, in its own process group, with a fresh
// profile; playwright-core drives it over the DevTools protocol. afterAll
// kills the whole group (also when a test or the launch failed) and checks
// that no process of it is left.
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { ShutdownTimeline } from "../src/index.ts"
import { clean, forced, representative } from "./support/timelineReports.ts"

const executable = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const installed = fs.existsSync(executable)
const inCi = !!process.env.CI
const howToEnable = `install it with \`apt-get install -y chromium\` (or set CHROMIUM_PATH)`

const flags = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--remote-debugging-port=0",
  "--remote-allow-origins=*"
]

// The page's globals, typed just enough for the measuring function that runs
// there (the project's lib has no DOM, and a lib reference would give every
// file browser globals).
declare const document: any
declare const getComputedStyle: (el: unknown) => { readonly fontSize: string }

/** What the page measured: every rendered text with its box (CSS px, root at 0,0) and computed font size. */
interface Measured {
  readonly root: { readonly tag: string; readonly width: number; readonly height: number; readonly viewBox: string }
  readonly parseError: string | undefined
  readonly texts: ReadonlyArray<{ readonly text: string; readonly x: number; readonly y: number; readonly w: number; readonly h: number; readonly fontSize: number }>
}

const measure = (page: Page): Promise<Measured> =>
  page.evaluate(() => {
    const root = document.documentElement
    const parseError = document.querySelector("parsererror")?.textContent ?? undefined
    const rootBox = root.getBoundingClientRect()
    const texts = Array.from(document.querySelectorAll("text") as ArrayLike<any>).map((el) => {
      const r = el.getBoundingClientRect()
      // the text as drawn, without its tooltip
      const shown = Array.from(el.childNodes as ArrayLike<any>).filter((n) => n.nodeName !== "title").map((n) => n.textContent).join("")
      return {
        text: shown,
        x: r.x - rootBox.x,
        y: r.y - rootBox.y,
        w: r.width,
        h: r.height,
        fontSize: parseFloat(getComputedStyle(el).fontSize)
      }
    })
    return {
      root: {
        tag: root.tagName,
        width: rootBox.width,
        height: rootBox.height,
        viewBox: root.getAttribute("viewBox") ?? ""
      },
      parseError,
      texts
    }
  })

const overlaps = (texts: Measured["texts"]): Array<string> => {
  const found: Array<string> = []
  const tolerance = 0.5
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      const a = texts[i]!
      const b = texts[j]!
      const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x)
      const dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y)
      if (dx > tolerance && dy > tolerance) {
        found.push(`"${a.text}" (${a.x.toFixed(1)},${a.y.toFixed(1)} ${a.w.toFixed(1)}×${a.h.toFixed(1)}) and "${b.text}" (${b.x.toFixed(1)},${b.y.toFixed(1)} ${b.w.toFixed(1)}×${b.h.toFixed(1)})`)
      }
    }
  }
  return found
}

if (!installed && !inCi) {
  process.stderr.write(`\n[timeline.browser.test] SKIPPED: ${executable} is not installed; ${howToEnable} to run the browser check of the timeline drawings.\n\n`)
}

describe.skipIf(!installed && !inCi)("the timeline in headless Chromium", () => {
  let profile: string | undefined
  let child: ChildProcess | undefined
  let browser: Browser | undefined
  let page: Page | undefined
  let launchOutput = ""
  const pages = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-timeline-svg-"))
  const errors: Array<string> = []

  beforeAll(async () => {
    assert.isTrue(installed, `CI must run the browser check, but ${executable} is missing: .ci/run should ${howToEnable}`)
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "winddown-chromium-"))
    // detached: its own process group, so afterAll can kill every process it starts.
    child = spawn(executable, [...flags, `--user-data-dir=${profile}`, "about:blank"], { detached: true, stdio: ["ignore", "ignore", "pipe"] })
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium did not open its DevTools port within 45 s:\n${launchOutput.slice(-2000)}`)), 45_000)
      child!.stderr!.on("data", (d: Buffer) => {
        launchOutput += d
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(launchOutput)
        if (m) {
          clearTimeout(timer)
          resolve(m[1]!)
        }
      })
      child!.on("error", (e) => {
        clearTimeout(timer)
        reject(e)
      })
      child!.on("exit", (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`chromium exited (${code ?? signal}) before it was ready:\n${launchOutput.slice(-2000)}`))
      })
    })
    browser = await chromium.connectOverCDP(endpoint, { timeout: 45_000 })
    const context = browser.contexts()[0] ?? (await browser.newContext())
    page = await context.newPage()
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`))
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") errors.push(`console ${m.type()}: ${m.text()}`)
    })
    page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()}`))
  }, 90_000)

  afterAll(async () => {
    await browser?.close().catch(() => {})
    let alive = false
    const pid = child?.pid
    if (pid !== undefined) {
      try {
        process.kill(-pid, "SIGKILL")
      } catch {
        // already gone
      }
      // wait until no process of the group is left
      alive = true
      for (let i = 0; i < 100 && alive; i++) {
        try {
          process.kill(-pid, 0)
          await new Promise((r) => setTimeout(r, 50))
        } catch {
          alive = false
        }
      }
    }
    if (profile !== undefined) fs.rmSync(profile, { recursive: true, force: true })
    fs.rmSync(pages, { recursive: true, force: true })
    assert.isFalse(alive, `chromium processes of group ${pid} are still running`)
  }, 30_000)

  /** Open an SVG as its own document (file://, parsed as XML, 100 % zoom) and measure it. */
  const open = async (name: string, svg: string): Promise<Measured> => {
    const file = path.join(pages, `${name.replace(/\W+/g, "-")}.svg`)
    fs.writeFileSync(file, svg)
    errors.length = 0
    await page!.setViewportSize({ width: 1600, height: 1200 })
    await page!.goto(`file://${file}`, { waitUntil: "load", timeout: 30_000 })
    const measured = await measure(page!)
    if (process.env.TIMELINE_SCREENSHOTS) {
      fs.mkdirSync(process.env.TIMELINE_SCREENSHOTS, { recursive: true })
      await page!.screenshot({ path: path.join(process.env.TIMELINE_SCREENSHOTS, `${path.basename(file, ".svg")}.png`), fullPage: true })
    }
    return measured
  }

  const checkDrawing = (name: string, m: Measured) => {
    assert.isUndefined(m.parseError, `${name}: not well-formed XML: ${m.parseError}`)
    assert.strictEqual(m.root.tag, "svg")
    assert.deepStrictEqual(errors, [], `${name}: the browser reported errors`)
    const [, , vw, vh] = m.root.viewBox.split(" ").map(Number)
    // 100 %: one user unit is one CSS pixel
    assert.closeTo(m.root.width, vw!, 0.01, `${name}: rendered width`)
    assert.closeTo(m.root.height, vh!, 0.01, `${name}: rendered height`)
    const drawn = m.texts.filter((t) => t.w > 0 && t.h > 0)
    assert.strictEqual(drawn.length, m.texts.length, `${name}: texts with an empty box: ${m.texts.filter((t) => !(t.w > 0)).map((t) => t.text).join(", ")}`)
    assert.isAbove(drawn.length, 20, `${name}: texts`)
    const none = (problems: ReadonlyArray<string>, what: string) => {
      if (problems.length > 0) assert.fail(`${name}: ${what}:\n  ${problems.join("\n  ")}`)
    }
    const outside = drawn.filter((t) => t.x < 0 || t.y < 0 || t.x + t.w > vw! + 0.01 || t.y + t.h > vh! + 0.01)
    none(outside.map((t) => `"${t.text}" at ${t.x.toFixed(1)},${t.y.toFixed(1)} ${t.w.toFixed(1)}×${t.h.toFixed(1)}`), `texts outside the ${vw}×${vh} viewBox`)
    none(drawn.filter((t) => t.fontSize < 10).map((t) => `"${t.text}" ${t.fontSize}px`), "texts under 10 px")
    none(overlaps(drawn), "overlapping texts")
  }

  for (const [name, report] of representative) {
    it(`${name}: renders without errors, no texts overlap, all inside the viewBox, none under 10 px`, async () => {
      checkDrawing(name, await open(name, ShutdownTimeline.toSvg(report)))
    }, 60_000)
  }

  it("the README's figure, docs/demo-shutdown.svg (a real shutdown of the demo), holds too", async () => {
    const figure = fs.readFileSync(path.join(import.meta.dirname, "..", "docs", "demo-shutdown.svg"), "utf8")
    checkDrawing("README figure", await open("readme figure", figure))
  }, 60_000)

  it("the narrowest width and a wide one hold too", async () => {
    checkDrawing("narrow forced", await open("narrow forced", ShutdownTimeline.toSvg(forced, { width: 560 })))
    checkDrawing("wide clean", await open("wide clean", ShutdownTimeline.toSvg(clean, { width: 1600 })))
  }, 60_000)

  it("the check itself catches each fault: overlap, outside the viewBox, under 10 px, not well-formed", async () => {
    // 24 texts well apart: passes; each variant adds one fault
    const fine = Array.from({ length: 24 }, (_, i) => `<text x="${10 + (i % 4) * 140}" y="${20 + Math.floor(i / 4) * 30}">text ${i}</text>`).join("")
    const svg = (extra: string) =>
      `<svg xmlns="http://www.w3.org/2000/svg" width="600" height="240" viewBox="0 0 600 240" font-family="Arial" font-size="11">${fine}${extra}</svg>`
    checkDrawing("baseline", await open("baseline", svg("")))
    const faults: ReadonlyArray<readonly [string, string, RegExp]> = [
      ["overlap", `<text x="14" y="22">on top of text 0</text>`, /overlapping texts[\s\S]*"text 0"[\s\S]*"on top of text 0"/],
      ["outside", `<text x="560" y="230">past the right edge</text>`, /texts outside the 600×240 viewBox[\s\S]*"past the right edge"/],
      ["tiny", `<text x="10" y="230" font-size="8">tiny</text>`, /texts under 10 px[\s\S]*"tiny" 8px/],
      ["malformed", `<text x="10" y="230">a & b</text>`, /not well-formed XML/]
    ]
    for (const [name, extra, message] of faults) {
      const m = await open(name, svg(extra))
      assert.throws(() => checkDrawing(name, m), message)
    }
  }, 60_000)

  it("a stack of reports (--all) renders as one document, each with its texts apart", async () => {
    const m = await open("stacked", ShutdownTimeline.toSvgAll([clean, forced]))
    checkDrawing("stacked", m)
    const titles = m.texts.filter((t) => t.text.startsWith("Shutdown: "))
    assert.strictEqual(titles.length, 2)
    assert.isAbove(titles[1]!.y, titles[0]!.y + 300)
  }, 60_000)
})
