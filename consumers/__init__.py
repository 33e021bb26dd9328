"""Fan-out of ledger events to webhooks and NATS JetStream."""
