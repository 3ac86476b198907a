"""Notifications of the software eUICC (SGP.22 5.7.9-5.7.11): the signed ProfileInstallationResult
that ends every loading, kept until the LPA has delivered it (ES10b.RemoveNotificationFromList)."""
from __future__ import annotations

from smdpp.euicc.card_core import CardCore, RspSession
from smdpp.euicc.installation import encode_pir, encode_pir_data

__all__ = ["Notifications"]


class Notifications(CardCore):
    """The pending notifications of :class:`~smdpp.euicc.card.SoftEuicc` and their seqNumber."""

    @property
    def seq_number(self) -> int:
        """The last notification seqNumber used (SGP.22 5.7.9); a persistent card restores it."""
        return self._seq_number

    @seq_number.setter
    def seq_number(self, value: int) -> None:
        self._seq_number = value

    def _installation_result(self, session: RspSession, iccid_ef: bytes | None,
                             outcome: tuple[int, int] | str) -> bytes:
        """The signed ProfileInstallationResult (BF37, SGP.22 5.7.6) of ``session``, queued as pending.

        ``outcome`` is the installed ICCID (digits) or ``(bppCommandId, errorReason)``.
        """
        self._seq_number += 1
        common = dict(transaction_id=session.transaction_id, seq_number=self._seq_number,
                      notification_address=session.server_address, iccid_ef=iccid_ef,
                      smdp_oid=session.smdp_oid)
        if isinstance(outcome, str):
            pir_data = encode_pir_data(**common, success_aid=self.isdp_aids[outcome])
        else:
            pir_data = encode_pir_data(**common, error=outcome)
        pir = encode_pir(pir_data, self.sign(pir_data))
        self.pending_notifications[self._seq_number] = pir
        return pir

    def remove_notification(self, seq_number: int) -> bool:
        """ES10b.RemoveNotificationFromList (SGP.22 5.7.11): True if it was pending."""
        return self.pending_notifications.pop(seq_number, None) is not None
