/**
 * Build the publishable package into build/: compiled JavaScript and
 * declarations from src/, and a package.json whose exports point at them, so
 * consumers run it on plain Node with no TypeScript loader. The repository's
 * own package.json keeps pointing at the sources for development.
 *
 *   npm run build      then      cd build && npm publish
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")
const out = path.join(root, "build")
fs.rmSync(out, { recursive: true, force: true })
execFileSync(process.execPath, [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(root, "tsconfig.build.json")], {
  stdio: "inherit"
})

const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const entry = (dir: string) => ({ types: `./dist/${dir}index.d.ts`, default: `./dist/${dir}index.js` })
const published = {
  name: pkg.name,
  version: pkg.version,
  description: pkg.description,
  license: pkg.license,
  type: "module",
  exports: { ".": entry(""), "./node": entry("node/"), "./testing": entry("testing/"), "./bullmq": entry("bullmq/") },
  files: ["dist", "README.md"],
  engines: { node: ">=20" },
  peerDependencies: pkg.peerDependencies,
  peerDependenciesMeta: pkg.peerDependenciesMeta
}
fs.writeFileSync(path.join(out, "package.json"), `${JSON.stringify(published, null, 2)}\n`)
fs.copyFileSync(path.join(root, "README.md"), path.join(out, "README.md"))
console.log(`built ${path.relative(root, out)}/ (${published.name}@${published.version})`)
