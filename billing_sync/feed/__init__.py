"""Change events on message buses (issue 16): relays from the warehouse's outbox
(:mod:`billing_sync.load.outbox`) to Redis Streams and NATS JetStream."""
