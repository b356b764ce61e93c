/**
 * A plain node:http server with @godaddy/terminus (stoppable underneath),
 * timeout raised from 1 s to the shared grace, exit code 0.
 */
import { createTerminus } from "@godaddy/terminus"
import * as http from "node:http"
import { announce, graceMs, handler, host } from "./shared.ts"

const server = announce(http.createServer(handler))
createTerminus(server, { signals: ["SIGTERM"], timeout: graceMs, useExit0: true })
server.listen(0, host)
