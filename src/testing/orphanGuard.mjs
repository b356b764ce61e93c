// Loaded (`node --import`) into every child started by winddown/testing's
// ChildProcess.spawn. Its stdin is a pipe from the test process: when that
// pipe closes, the test process is gone (killed, crashed), and so is this
// child, at once, so no fixture outlives its test run. The pipe is unref'd:
// it never keeps the child alive by itself.
const stdin = process.stdin
const die = () => process.kill(process.pid, "SIGKILL")
stdin.on("end", die)
stdin.on("close", die)
stdin.on("error", die)
stdin.resume()
if (typeof stdin.unref === "function") stdin.unref()
