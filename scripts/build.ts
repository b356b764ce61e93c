/**
 * Build the publishable package into build/: compiled JavaScript and
 * declarations from src/, the `winddown` command compiled from bin/, and a
 * package.json whose exports and bin point at them, so consumers run it on
 * plain Node with no TypeScript loader. The repository's own package.json
 * keeps pointing at the sources for development.
 *
 *   npm run build      then      cd build && npm publish
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.join(import.meta.dirname, "..")
const out = path.join(root, "build")
fs.rmSync(out, { recursive: true, force: true })
const tsc = (project: string) =>
  execFileSync(process.execPath, [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(root, project)], {
    stdio: "inherit"
  })
tsc("tsconfig.build.json")
// The command imports "winddown" by name: compiled against the declarations
// just built (tsconfig.build-bin.json maps the name to them), it resolves to
// the package's own exports at run time.
tsc("tsconfig.build-bin.json")
const command = path.join(out, "bin", "winddown.js")
// In the repository the shebang runs the TypeScript through tsx; published, it is plain node.
fs.writeFileSync(command, fs.readFileSync(command, "utf8").replace(/^#!.*\n/, "#!/usr/bin/env node\n"))
fs.chmodSync(command, 0o755)

const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"))
const entry = (dir: string) => ({ types: `./dist/${dir}index.d.ts`, default: `./dist/${dir}index.js` })
const published = {
  name: pkg.name,
  version: pkg.version,
  description: pkg.description,
  license: pkg.license,
  type: "module",
  exports: {
    ".": entry(""),
    "./node": entry("node/"),
    "./testing": entry("testing/"),
    "./bullmq": entry("bullmq/"),
    "./amqp": entry("amqp/"),
    "./nats": entry("nats/")
  },
  bin: { winddown: "./bin/winddown.js" },
  files: ["dist", "bin", "README.md"],
  engines: pkg.engines,
  peerDependencies: pkg.peerDependencies,
  peerDependenciesMeta: pkg.peerDependenciesMeta
}
fs.writeFileSync(path.join(out, "package.json"), `${JSON.stringify(published, null, 2)}\n`)
fs.copyFileSync(path.join(root, "README.md"), path.join(out, "README.md"))
// Plain JavaScript that tsc does not emit: loaded with `node --import` into test children.
fs.copyFileSync(path.join(root, "src", "testing", "orphanGuard.mjs"), path.join(out, "dist", "testing", "orphanGuard.mjs"))
console.log(`built ${path.relative(root, out)}/ (${published.name}@${published.version})`)
