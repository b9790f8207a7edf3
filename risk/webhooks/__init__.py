"""Signed webhooks to the contract system: events written in the caller's transaction, delivered by the
`webhooks` queue (worker/webhooks.py) with retries for a day, and their delivery log in the API.

Callers: `operations.emit` inside the transaction that decides an event, `risk.queues.enqueue_deliveries`
after its commit, `urls.validate_webhook_url` wherever a deal's webhook URL is written.
"""
