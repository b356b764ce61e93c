/**
 * winddown for NATS JetStream (`nats` is an optional peer dependency): a
 * pull consumer that stops pulling, drains with `working()` heartbeats, and
 * acks or naks every message it holds on shutdown.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as JetStreamConsumer from "./JetStreamConsumer.ts"
