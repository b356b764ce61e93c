/**
 * winddown for Node.js: signals, watchdog, exit codes, HTTP drain.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NodeShutdown from "./NodeShutdown.ts"
/** @since 0.1.0 */
export * as NodeHttpDrain from "./NodeHttpDrain.ts"
/** @since 0.1.0 */
export * as NodeHealth from "./NodeHealth.ts"
/** @since 0.1.0 */
export * as NodeCluster from "./NodeCluster.ts"
