"""Errors: gRPC status codes as Python exceptions.

The server's messages always read `<field path>: <rule>` (docs/api.md,
"Errors"), so the field is recovered from the message; callers can branch on
the exception class instead of comparing grpc.StatusCode values.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Type

import grpc
from google.protobuf import any_pb2, duration_pb2


class AnnealError(Exception):
    """An RPC failed. `code` is the grpc.StatusCode, `field` the field path
    the server named (or None)."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 method: str = "",
                 retry_delay: Optional[float] = None) -> None:
        self.code = code
        self.message = message
        self.method = method
        # Seconds, when the server asked to be retried after a while
        # (google.rpc.RetryInfo: it was overloaded, not refusing the call).
        self.retry_delay = retry_delay
        head, sep, _ = message.partition(": ")
        self.field: Optional[str] = head if sep and " " not in head else None
        where = "%s: " % method if method else ""
        super().__init__("%s%s: %s" % (where, code.name, message))

    def __reduce__(self) -> Any:
        # Picklable (torch.distributed broadcasts it from rank 0).
        return (type(self), (self.code, self.message, self.method,
                             self.retry_delay))

    @property
    def retryable(self) -> bool:
        """Worth retrying for an idempotent call: the server is unreachable,
        draining, or did not answer in time."""
        return False


class UnavailableError(AnnealError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the server is down, draining, or
    slow. Reads (Get, Evaluate, EvaluateRange) are safe to retry."""

    @property
    def retryable(self) -> bool:
        return True


class NotFoundError(AnnealError):
    pass


class AlreadyExistsError(AnnealError):
    pass


class InvalidArgumentError(AnnealError):
    pass


class FailedPreconditionError(AnnealError):
    """A step already served, or a stale expected_position."""


class StaleLineageError(FailedPreconditionError):
    """The job runs on a lineage of its schedule that a rewind ended
    (RewindSchedule): it must resume from a checkpoint below the step the
    message names, or stop."""


class AbortedError(AnnealError):
    """An etag mismatch: someone else changed the schedule first."""


class ResourceExhaustedError(AnnealError):
    """A limit was reached. With `retry_delay` set the server was only busy
    (too many range steps in flight, too much queued work): retry after it;
    without, the request itself is too large."""

    @property
    def retryable(self) -> bool:
        return self.retry_delay is not None


class ServerUnreachableError(RuntimeError):
    """The scheduler ran out of prefetched steps while the server was
    unreachable, and waited longer than its block_timeout."""


_BY_CODE: Dict[grpc.StatusCode, Type[AnnealError]] = {
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _fields(data: bytes):
    """(number, wire type, value) of each field of a serialized message;
    value is an int for varints and bytes for length-delimited fields."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            return
        yield number, wire, value


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def retry_delay_of(trailing: Optional[Sequence[Tuple[str, bytes]]]
                   ) -> Optional[float]:
    """The RetryInfo delay (seconds) in a call's grpc-status-details-bin
    trailer (a google.rpc.Status), or None. google.rpc is not packaged for
    Python in Debian, so the Status is read by hand: field 3 holds the
    details as google.protobuf.Any."""
    for key, value in trailing or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            for number, wire, detail in _fields(value):
                if number != 3 or wire != 2:
                    continue
                any_ = any_pb2.Any.FromString(detail)
                if any_.type_url != _RETRY_INFO:
                    continue
                for n, w, raw in _fields(any_.value):  # RetryInfo.retry_delay
                    if n == 1 and w == 2:
                        d = duration_pb2.Duration.FromString(raw)
                        return d.seconds + d.nanos / 1e9
        except Exception:  # not a Status we can read: no delay
            return None
    return None


def from_rpc_error(e: grpc.RpcError, method: str = "") -> AnnealError:
    """The AnnealError subclass for a failed call."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    trailing = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
    kind = _BY_CODE.get(code, AnnealError)
    if kind is FailedPreconditionError and details.startswith("lineage: "):
        kind = StaleLineageError
    return kind(code, details, method, retry_delay_of(trailing))
