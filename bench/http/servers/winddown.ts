/**
 * The router under winddown: NodeHttpDrain.layer + NodeShutdown.layer (default
 * 25 s budget) + runMain, as in examples/04_http_drain.ts.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import * as http from "node:http"
import { NodeHttpDrain, NodeShutdown } from "winddown/node"
import { announce, host, Routes } from "./shared.ts"

const HttpLive = NodeHttpDrain.layer(HttpRouter.serve(Routes, { disableLogger: true }), {
  port: 0,
  host,
  createServer: () => announce(http.createServer())
})

NodeRuntime.runMain(Layer.launch(HttpLive).pipe(Effect.provide(NodeShutdown.layer())))
