/**
 * winddown: graceful shutdown for Effect services.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Budget from "./Budget.ts"
/** @since 0.1.0 */
export * as Phase from "./Phase.ts"
/** @since 0.1.0 */
export * as Shutdown from "./Shutdown.ts"
/** @since 0.1.0 */
export * as ShutdownReport from "./ShutdownReport.ts"
/** @since 0.1.0 */
export * as ShutdownConfig from "./ShutdownConfig.ts"
/** @since 0.1.0 */
export * as Drain from "./Drain.ts"
/** @since 0.1.0 */
export * as Worker from "./Worker.ts"
/** @since 0.1.0 */
export * as Health from "./Health.ts"
/** @since 0.1.0 */
export * as ShutdownTimeline from "./ShutdownTimeline.ts"
/** @since 0.1.0 */
export * as ShutdownMetrics from "./ShutdownMetrics.ts"
/** @since 0.1.0 */
export * as Resource from "./Resource.ts"
