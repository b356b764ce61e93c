/**
 * Test helpers: TestClock-driven shutdowns and real child processes.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as TestShutdown from "./TestShutdown.ts"
/** @since 0.1.0 */
export * as ChildProcess from "./ChildProcess.ts"
