import { defineConfig } from "vitest/config"

// vitest 5's reporter calls Map.groupBy (Node 21+); on Node 20 a failing test
// would crash the summary instead of printing it.
if (typeof (Map as any).groupBy !== "function") {
  ;(Map as any).groupBy = <K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, Array<V>> => {
    const groups = new Map<K, Array<V>>()
    let i = 0
    for (const item of items) {
      const k = key(item, i++)
      const group = groups.get(k)
      if (group) group.push(item)
      else groups.set(k, [item])
    }
    return groups
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["test/support/setup.ts"],
    // Integration tests skip (outside CI) when a server is missing: say which, once.
    globalSetup: ["test/support/globalSetup.ts"],
    // Shutdown logs are the point of many tests: show them for failures only.
    silent: "passed-only",
    // Generous: many tests start real processes (tsx compiles on start), and a
    // loaded 2-core machine can take tens of seconds to get one to "ready".
    // Tests wait for what they need; these limits only stop a hung test.
    testTimeout: 120_000,
    // Most files wait on real processes, sockets and servers far more than
    // they compute: run three at once (vitest's default on 2 cores is one).
    maxWorkers: 3,
    hookTimeout: 60_000
  }
})
