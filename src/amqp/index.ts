/**
 * winddown for RabbitMQ with amqplib (`amqplib` is an optional peer
 * dependency): a consumer that is cancelled, drains, and acks or requeues
 * every message it holds on shutdown.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as AmqpConsumer from "./AmqpConsumer.ts"
