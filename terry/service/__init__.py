"""The service: the HTTP server, its worker, schedules and webhooks."""
