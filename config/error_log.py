"""The operators' error log, as the apps below monitoring reach it: they send `error_reported`
and monitoring stores the entry (monitoring.receivers connects monitoring.services.error_record).

The tool loop and the order look-ups handle their failures and go on, so nothing but this log
tells the shop; they cannot import monitoring, which sits above them and reads them for its
pages and metrics. The signal is sent synchronously: the entry is written before `send` returns,
as the direct call did.
"""

from django.dispatch import Signal

# Sent with error_record's keyword arguments: category=, code=, message=, and chatbot_id=,
# turn_id=, context= where known.
error_reported = Signal()
