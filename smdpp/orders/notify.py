"""ES2+.HandleDownloadProgressInfo (SGP.22 5.3.5): what the SM-DP+ tells the operator, sans I/O.

At each notification point of a download the operator that placed the order
hears what happened, as a JSON request to its ES2+ endpoint (SGP.22 6.5.2.5):

1. eligibility and retry limit check (ES9+.AuthenticateClient found the order),
2. Confirmation Code failure (ES9+.GetBoundProfilePackage),
3. BPP download (the Bound Profile Package went out),
4. BPP installation (ES9+.HandleNotification with the eUICC's
   ProfileInstallationResult, carried in ``resultData`` as received),

each with ``notificationPointStatus`` ``Executed-Success`` or ``Failed``
plus the SGP.22 codes.  :class:`Notifier` builds the body and puts it into
the durable queue of the order store; :mod:`smdpp.orders.delivery` sends it,
so that no ES9+ answer waits for the operator.
"""
from __future__ import annotations

import base64
import enum
import json
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from smdpp.errors import SgpError
from smdpp.orders.identifiers import padded_iccid
from smdpp.orders.operators import OperatorRegistry
from smdpp.orders.store import OrderStore, ProfileRecord

log = logging.getLogger(__name__)

FUNCTION = "handleDownloadProgressInfo"


class NotificationPoint(enum.IntEnum):
    """notificationPointId of SGP.22 5.3.5."""

    ELIGIBILITY = 1
    CONFIRMATION_FAILURE = 2
    BPP_DOWNLOAD = 3
    BPP_INSTALLATION = 4


def timestamp(moment: float) -> str:
    """W3C date-time in UTC as SGP.22 6.5.2 asks: ``YYYY-MM-DDThh:mm:ssZ``."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_info(requester: str, record: ProfileRecord, point: NotificationPoint, *,
                  eid: str | None, error: SgpError | None = None,
                  result_data: bytes | None = None, moment: float) -> bytes:
    """The JSON body of one HandleDownloadProgressInfo request (SGP.22 6.5.2.5)."""
    point_status: dict[str, Any] = {"status": "Executed-Success"}
    if error is not None:
        point_status = {"status": "Failed", "statusCodeData": {
            "subjectCode": error.subject_code, "reasonCode": error.reason_code,
            "message": error.message[:200]}}
    body: dict[str, Any] = {
        "header": {"functionRequesterIdentifier": requester,
                   "functionCallIdentifier": uuid.uuid4().hex},
        "iccid": padded_iccid(record.iccid),
        "profileType": record.profile_type,
        "timestamp": timestamp(moment),
        "notificationPointId": int(point),
        "notificationPointStatus": point_status,
    }
    if eid:
        body["eid"] = eid
    if result_data is not None:
        body["resultData"] = base64.b64encode(result_data).decode("ascii")
    return json.dumps(body, separators=(",", ":")).encode()


class Notifier:
    """Queues HandleDownloadProgressInfo for operators that gave a notify URL."""

    def __init__(self, store: OrderStore, operators: OperatorRegistry, requester: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.operators = operators
        self.requester = requester  # our functionRequesterIdentifier: the SM-DP+ address
        self.clock = clock

    def notify(self, record: ProfileRecord, point: NotificationPoint, *, eid: str | None,
               error: SgpError | None = None, result_data: bytes | None = None) -> None:
        """Queue one notification for the operator of ``record``'s order (if it wants them)."""
        if record.operator is None:
            return
        operator = self.operators.by_name(record.operator)
        if operator is None or operator.notify_url is None:
            return
        body = progress_info(self.requester, record, point, eid=eid, error=error,
                             result_data=result_data, moment=self.clock())
        queued = self.store.enqueue(operator.name, body)
        log.info("ICCID %s: HandleDownloadProgressInfo point %d (%s) queued for %s (#%d)",
                 record.iccid, point, "failed" if error else "success", operator.name, queued)
