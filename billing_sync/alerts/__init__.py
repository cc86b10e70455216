"""Alerts (DESIGN §8): conditions on-call must hear about, deduplicated while they last,
with a "resolved" message when they clear, POSTed as JSON to a webhook.

- :mod:`.conditions` (pure): what is wrong now, from plain figures.
- :mod:`.state` (pure): which conditions fire or resolve, given what was already sent.
- :mod:`.payload` (pure): the JSON body, plain or Slack-compatible.
- :mod:`.webhook` (I/O): the POST, with the standard library.
- :func:`.notify.notify`: all of the above for one evaluation (a sensor tick).
"""

from billing_sync.alerts.conditions import Condition
from billing_sync.alerts.notify import Notification, notify
from billing_sync.alerts.state import AlertState

__all__ = ["AlertState", "Condition", "Notification", "notify"]
