"""The notifier: people told what Terry did, where they work (issue 15).

Routes in ``terry.yml`` (``notifications.routes``) say which events go where; the events
are read from the audit log (``events``), owed in the store's outbox (``outbox``), composed
into short inert messages (``message``) and sent through apprise (``send``) by delivery
rounds (``deliver``): at least once, deduplicated, grouped, retried with backoff and
dead-lettered. Scheduled reports use the same sending path (``terry.service.schedules``).
"""

from __future__ import annotations
