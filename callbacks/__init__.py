"""Outgoing signed webhooks: API clients register callback URLs (per account, or per job) and receive
`job.completed`, `job.failed` and `segment.completed` events, signed per the Standard Webhooks spec and
retried with backoff until a 2xx or CALLBACK_MAX_ATTEMPTS."""
