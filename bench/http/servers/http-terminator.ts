/**
 * A plain node:http server with http-terminator and a hand-written SIGTERM
 * handler (gracefulTerminationTimeout raised from 1 s to the shared grace).
 */
import { createHttpTerminator } from "http-terminator"
import * as http from "node:http"
import { announce, graceMs, handler, host } from "./shared.ts"

const server = announce(http.createServer(handler))
const terminator = createHttpTerminator({ server, gracefulTerminationTimeout: graceMs })
server.listen(0, host)

process.once("SIGTERM", () => {
  terminator.terminate().then(
    () => process.exit(0),
    () => process.exit(1)
  )
})
