"""The one exception type of the RSP engine: an SGP.22 function execution status.

SGP.22 6.5.1.4 (Function Execution Status) reports a failed function with a
``subjectCode`` (what the error is about) and a ``reasonCode`` (why), both
dotted strings such as ``8.1.3`` / ``6.3``.  Every verification failure in the
core raises :class:`SgpError`; the HTTP layer turns it into the JSON header.
The codes themselves are built in :mod:`smdpp.status`, nowhere else.
"""
from __future__ import annotations


#: Characters of a message kept: it may quote what a client sent, and it goes into the
#: answer and the log lines.
MAX_MESSAGE = 200


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class SgpError(Exception):
    """A function execution failure with its SGP.22 subject and reason codes.

    The message is cut to :data:`MAX_MESSAGE` characters (:func:`bounded`).
    """

    def __init__(self, subject_code: str, reason_code: str, message: str) -> None:
        message = bounded(message)
        super().__init__(f"{subject_code}/{reason_code}: {message}")
        self.subject_code = subject_code
        self.reason_code = reason_code
        self.message = message

    def status(self) -> dict[str, object]:
        """The ``functionExecutionStatus`` object of SGP.22 6.5.1.4 for this failure."""
        return {
            "status": "Failed",
            "statusCodeData": {
                "subjectCode": self.subject_code,
                "reasonCode": self.reason_code,
                "message": self.message,
            },
        }


class EuiccReportedError(SgpError):
    """The eUICC itself answered with an error (authenticateResponseError, SGP.22 5.6.3;
    downloadResponseError, 5.6.2): the session it belongs to cannot go on."""
