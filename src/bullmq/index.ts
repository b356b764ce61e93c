/**
 * winddown for BullMQ (`bullmq` is an optional peer dependency): a worker
 * that stops fetching, drains, checkpoints and hands jobs back on shutdown.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as BullWorker from "./BullWorker.ts"
