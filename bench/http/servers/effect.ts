/**
 * The same router on effect alone: NodeHttpServer.layer (default 20 s
 * gracefulShutdownTimeout) + runMain, no winddown.
 */
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import * as http from "node:http"
import { announce, host, Routes } from "./shared.ts"

const HttpLive = HttpRouter.serve(Routes, { disableLogger: true }).pipe(
  Layer.provide(NodeHttpServer.layer(() => announce(http.createServer()), { port: 0, host }))
)

NodeRuntime.runMain(Layer.launch(HttpLive))
