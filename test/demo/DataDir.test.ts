import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as DataDir from "../../demo/DataDir.ts"
import * as InstanceLock from "../../demo/InstanceLock.ts"

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "winddown-datadir-"))
const lockFile = (dir: string) => path.join(dir, InstanceLock.lockName)

const id = (pid: number, token: string): InstanceLock.Identity => ({ pid, token, started: "-" })
const a = id(101, "aaaa")
const b = id(102, "bbbb")
const c = id(103, "cccc")

/** A world where the listed identities run and every other one is dead. */
const aliveOnly = (...running: Array<InstanceLock.Identity>) => (holder: InstanceLock.Identity) =>
  running.some((r) => r.token === holder.token)

describe("demo data directory lock", () => {
  it("the holder is the first line's, then the first claim against each holder in turn", () => {
    assert.deepStrictEqual(InstanceLock.holderOf("holder 101 aaaa -\n"), a)
    assert.deepStrictEqual(InstanceLock.holderOf("holder 101 aaaa -\ntakeover aaaa 102 bbbb -\ntakeover aaaa 103 cccc -\n"), b)
    assert.deepStrictEqual(
      InstanceLock.holderOf("holder 101 aaaa -\ntakeover aaaa 102 bbbb -\ntakeover bbbb 103 cccc -\n"),
      c
    )
    // An incomplete last line (a claim being written) does not count yet.
    assert.deepStrictEqual(InstanceLock.holderOf("holder 101 aaaa -\ntakeover aaaa 102 bb"), a)
    // Garbage: an unknown holder, dead, whose lock is taken over by claims against "-".
    assert.strictEqual(InstanceLock.holderOf("").token, "-")
    assert.strictEqual(InstanceLock.holderOf("rubbish\n").token, "-")
    assert.deepStrictEqual(InstanceLock.holderOf("rubbish\ntakeover - 102 bbbb -\n"), b)
  })

  it("a free directory: the lock is created whole; released, it is gone", () => {
    const dir = tempDir()
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, a, aliveOnly(a)).holder, a)
    assert.strictEqual(fs.readFileSync(lockFile(dir), "utf8"), "holder 101 aaaa -\n")
    assert.deepStrictEqual(fs.readdirSync(dir), [InstanceLock.lockName])
    InstanceLock.releaseSync(dir, b)
    assert.isTrue(fs.existsSync(lockFile(dir)), "released by someone who does not hold it")
    InstanceLock.releaseSync(dir, a)
    assert.deepStrictEqual(fs.readdirSync(dir), [])
  })

  it("held by a live process: refused, naming it; the file is untouched", () => {
    const dir = tempDir()
    InstanceLock.acquireSync(dir, a, aliveOnly(a))
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, b, aliveOnly(a, b)).holder, a)
    assert.strictEqual(fs.readFileSync(lockFile(dir), "utf8"), "holder 101 aaaa -\n")
  })

  it("held by a dead process: taken over, by appending a claim", () => {
    const dir = tempDir()
    InstanceLock.acquireSync(dir, a, aliveOnly(a))
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, b, aliveOnly(b)).holder, b)
    assert.strictEqual(fs.readFileSync(lockFile(dir), "utf8"), "holder 101 aaaa -\ntakeover aaaa 102 bbbb -\n")
    // and b is now the one a third starter sees
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, c, aliveOnly(b, c)).holder, b)
    InstanceLock.releaseSync(dir, b)
    assert.isFalse(fs.existsSync(lockFile(dir)))
  })

  it("two starters racing for one stale lock: the first claim wins, the second sees it alive", () => {
    const dir = tempDir()
    InstanceLock.acquireSync(dir, a, aliveOnly(a))
    // b read the stale lock and wrote its claim just before c does the same.
    fs.appendFileSync(lockFile(dir), "takeover aaaa 102 bbbb -\n")
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, c, aliveOnly(b, c)).holder, b)
    // had b died since, c takes over from b (not from a)
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, c, aliveOnly(c)).holder, c)
    assert.deepStrictEqual(InstanceLock.holderOf(fs.readFileSync(lockFile(dir), "utf8")), c)
  })

  it("a lock file that is garbage is taken over", () => {
    const dir = tempDir()
    fs.writeFileSync(lockFile(dir), "who knows\n")
    assert.deepStrictEqual(InstanceLock.acquireSync(dir, a, aliveOnly(a)).holder, a)
  })

  it("liveness: this process is alive, an exited one is not, our own pid with another token is an earlier life", () => {
    const me = InstanceLock.self()
    const other = { ...InstanceLock.self(), pid: process.ppid, started: InstanceLock.startTimeOf(process.ppid) }
    assert.isTrue(InstanceLock.isAlive(other, me))
    assert.isFalse(InstanceLock.isAlive({ ...me, token: "0000" }, me))
    assert.isFalse(InstanceLock.isAlive(id(2 ** 30, "dead"), me))
    assert.isFalse(InstanceLock.isAlive({ pid: 0, token: "-", started: "-" }, me))
    // A live pid whose start time differs was reused by another process: the holder is gone.
    if (other.started !== "-") assert.isFalse(InstanceLock.isAlive({ ...other, started: "1" }, me))
  })

  it.effect("lock: held until the scope closes; a second lock in the same directory is refused with one line", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const scope = yield* Scope.make()
      yield* Scope.provide(DataDir.lock(dir, "./data"), scope)
      assert.isTrue(fs.existsSync(lockFile(dir)))
      // Our own pid with another token would count as an earlier life: pretend to be another process.
      const holder = InstanceLock.holderOf(fs.readFileSync(lockFile(dir), "utf8"))
      fs.writeFileSync(lockFile(dir), `holder ${process.ppid} ${holder.token} ${InstanceLock.startTimeOf(process.ppid)}\n`)
      const refused = yield* Effect.flip(Effect.scoped(DataDir.lock(dir, "./data")))
      assert.strictEqual(refused.reason, "inUse")
      assert.strictEqual(
        refused.message,
        `DATA_DIR="./data" is in use by another instance: pid ${process.ppid} holds ${lockFile(dir)}`
      )
      fs.writeFileSync(lockFile(dir), `holder ${process.pid} ${holder.token} ${holder.started}\n`)
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(fs.existsSync(lockFile(dir)))
    }))

  it.effect("prepare: a file, a path under a file, or an unwritable directory is refused with the path", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = path.join(dir, "file")
      fs.writeFileSync(file, "")
      assert.strictEqual((yield* Effect.flip(DataDir.prepare(file))).message, `DATA_DIR=${JSON.stringify(file)}: is a file, not a directory`)
      assert.include((yield* Effect.flip(DataDir.prepare(path.join(file, "sub")))).message, "is under a file, not a directory (ENOTDIR)")
      assert.strictEqual(yield* DataDir.prepare(path.join(dir, "new", "deep")), path.join(dir, "new", "deep"))
      if (process.getuid?.() !== 0) {
        const locked = path.join(dir, "locked")
        fs.mkdirSync(locked, { mode: 0o555 })
        assert.include((yield* Effect.flip(DataDir.prepare(locked))).message, "is not writable by this user (EACCES)")
      }
    }))
})
