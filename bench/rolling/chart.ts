/**
 * The rolling bench's chart, plain SVG (no chart library): one block per
 * contender on a shared time axis, each with requests per second (ok), failed
 * requests per second (its own red strip, so that one failure shows), and
 * latency (p50, p99, max per bin; log scale). Every replica replacement is a
 * band: dark from SIGTERM to the exit, light from the exit until the new
 * replica is ready.
 */
import type { Result } from "./harness.ts"

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const num = (n: number) => (Number.isFinite(n) ? Number(n.toFixed(1)).toString() : "0")

const niceStep = (span: number, count: number) => {
  const raw = span / count
  const pow = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw
}

export interface ChartOptions {
  readonly width?: number
  readonly caption?: string
}

export const render = (results: ReadonlyArray<Result>, options: ChartOptions = {}): string => {
  const width = options.width ?? 960
  const left = 64
  const right = 16
  const plotW = width - left - right
  const rpsH = 90
  const failH = 36
  const latH = 90
  const gap = 10
  const titleH = 22
  const blockH = titleH + rpsH + gap + failH + gap + latH + 34
  const top = 40
  const legendH = 24
  const height = top + legendH + results.length * blockH + 10

  // One time axis for all, from each contender's own load start.
  const t0 = 0
  const t1 = Math.max(...results.map((r) => {
    const last = r.series[r.series.length - 1]
    return last === undefined ? 1 : last.t + r.binMs - r.loadStartAt
  }))
  let shift = 0
  const x = (t: number) => left + Math.max(0, (t - shift - t0) / Math.max(1, t1 - t0)) * plotW
  const perSecond = (count: number, r: Result) => (count * 1000) / r.binMs
  const rpsMax = Math.max(1, ...results.flatMap((r) => r.series.map((b) => perSecond(b.ok, r)))) * 1.08
  const failMax = Math.max(10, ...results.flatMap((r) => r.series.map((b) => perSecond(b.failed, r))))
  const latMin = 1
  const latMax = 10_000
  const ly = (v: number, y0: number) =>
    y0 + latH - (Math.log10(Math.min(latMax, Math.max(latMin, v))) / Math.log10(latMax)) * latH

  const out: Array<string> = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">Rolling restarts behind HAProxy: requests, failures and latency over time</text>`
  )
  if (options.caption !== undefined) out.push(`<text x="${left}" y="33" fill="#555">${esc(options.caption)}</text>`)
  // Legend.
  const ly0 = top + 6
  const legend: Array<[string, string]> = [
    ["#2b7bb9", "ok requests/s"],
    ["#d62728", "failed requests/s (own scale)"],
    ["#2b7bb9", "latency p50"],
    ["#ff7f0e", "p99"],
    ["#999999", "max"]
  ]
  let lx = left
  for (const [color, label] of legend) {
    out.push(`<rect x="${lx}" y="${ly0 - 8}" width="14" height="8" fill="${color}"/>`, `<text x="${lx + 18}" y="${ly0}">${esc(label)}</text>`)
    lx += 30 + label.length * 6.2
  }
  out.push(
    `<rect x="${lx}" y="${ly0 - 8}" width="14" height="8" fill="#444" fill-opacity="0.25"/><text x="${lx + 18}" y="${ly0}">SIGTERM → exit</text>`,
    `<rect x="${lx + 120}" y="${ly0 - 8}" width="14" height="8" fill="#444" fill-opacity="0.09"/><text x="${lx + 138}" y="${ly0}">exit → new replica ready</text>`
  )

  results.forEach((r, i) => {
    shift = r.loadStartAt
    const y0 = top + legendH + i * blockH
    const yRps = y0 + titleH
    const yFail = yRps + rpsH + gap
    const yLat = yFail + failH + gap
    const yEnd = yLat + latH
    const exits = r.replicas.filter((p) => !p.final).map((p) => p.exitCode ?? p.exitSignal).join(",")
    const title = `${r.title}: ${fmt(r.failed)} failed of ${fmt(r.requests)} requests; jobs ${r.jobs.lost} lost, ${r.jobs.completedTwice} twice; exit codes ${exits}`
    out.push(`<text x="${left}" y="${y0 + 15}" font-size="13" font-weight="bold"${r.failed > 0 ? "" : ` fill="#1a5e20"`}>${esc(title)}</text>`)
    // Restart bands.
    for (const s of r.restarts) {
      out.push(
        `<rect x="${num(x(s.sigtermAt))}" y="${yRps}" width="${num(Math.max(1, x(s.exitedAt) - x(s.sigtermAt)))}" height="${yEnd - yRps}" fill="#444" fill-opacity="0.25"/>`,
        `<rect x="${num(x(s.exitedAt))}" y="${yRps}" width="${num(Math.max(1, x(s.readyAt) - x(s.exitedAt)))}" height="${yEnd - yRps}" fill="#444" fill-opacity="0.09"/>`,
        `<text x="${num(x(s.sigtermAt) + 2)}" y="${yRps + 10}" font-size="10" fill="#333">r${s.slot + 1}</text>`
      )
    }
    // Frames and y labels.
    for (const [y, h, label] of [[yRps, rpsH, "req/s"], [yFail, failH, "failed/s"], [yLat, latH, "latency"]] as const) {
      out.push(`<rect x="${left}" y="${y}" width="${plotW}" height="${h}" fill="none" stroke="#ccc"/>`)
      out.push(`<text x="${left - 6}" y="${y + h / 2 + 4}" text-anchor="end" fill="#555">${label}</text>`)
    }
    // Requests per second.
    const rpsY = (v: number) => yRps + rpsH - (v / rpsMax) * rpsH
    const okPath = r.series.map((b, j) => `${j === 0 ? "M" : "L"}${num(x(b.t + r.binMs / 2))},${num(rpsY(perSecond(b.ok, r)))}`).join("")
    if (okPath !== "") out.push(`<path d="${okPath}" fill="none" stroke="#2b7bb9" stroke-width="1.5"/>`)
    out.push(`<text x="${left + plotW - 3}" y="${yRps + 11}" text-anchor="end" fill="#777" font-size="10">${fmt(rpsMax / 1.08)}/s</text>`)
    // Failed per second: bars.
    for (const b of r.series) {
      if (b.failed === 0) continue
      const h = Math.max(2, (perSecond(b.failed, r) / failMax) * failH)
      out.push(`<rect x="${num(x(b.t))}" y="${num(yFail + failH - h)}" width="${num(Math.max(2, x(b.t + r.binMs) - x(b.t)))}" height="${num(h)}" fill="#d62728"><title>${b.failed} failed</title></rect>`)
    }
    out.push(`<text x="${left + plotW - 3}" y="${yFail + 10}" text-anchor="end" fill="#777" font-size="10">${fmt(failMax)}/s</text>`)
    // Latency, log scale.
    for (const v of [1, 10, 100, 1_000, 10_000]) {
      const y = ly(v, yLat)
      out.push(`<line x1="${left}" x2="${left + plotW}" y1="${num(y)}" y2="${num(y)}" stroke="#eee"/>`)
      out.push(`<text x="${left + plotW - 3}" y="${num(v === 10_000 ? y + 9 : y - 2)}" text-anchor="end" fill="#999" font-size="10">${v >= 1_000 ? `${v / 1_000} s` : `${v} ms`}</text>`)
    }
    const line = (key: "p50" | "p99", color: string) => {
      const d = r.series.map((b, j) => `${j === 0 ? "M" : "L"}${num(x(b.t + r.binMs / 2))},${num(ly(b[key], yLat))}`).join("")
      if (d !== "") out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.2"/>`)
    }
    for (const b of r.series) out.push(`<circle cx="${num(x(b.t + r.binMs / 2))}" cy="${num(ly(b.max, yLat))}" r="1.2" fill="#999"/>`)
    line("p99", "#ff7f0e")
    line("p50", "#2b7bb9")
    // Time axis.
    const step = niceStep((t1 - t0) / 1000, 10)
    for (let s = Math.ceil(t0 / 1000 / step) * step; s * 1000 <= t1; s += step) {
      const xx = x(s * 1000 + shift)
      out.push(`<line x1="${num(xx)}" x2="${num(xx)}" y1="${yEnd}" y2="${yEnd + 4}" stroke="#999"/>`)
      out.push(`<text x="${num(xx)}" y="${yEnd + 14}" text-anchor="middle" fill="#777" font-size="10">${s} s</text>`)
    }
  })
  out.push("</svg>")
  return `${out.join("\n")}\n`
}
