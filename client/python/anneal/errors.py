"""Errors: gRPC status codes as Python exceptions.

The server's messages always read `<field path>: <rule>` (docs/api.md,
"Errors"), so the field is recovered from the message; callers can branch on
the exception class instead of comparing grpc.StatusCode values.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

import grpc


class AnnealError(Exception):
    """An RPC failed. `code` is the grpc.StatusCode, `field` the field path
    the server named (or None)."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        head, sep, _ = message.partition(": ")
        self.field: Optional[str] = head if sep and " " not in head else None
        where = "%s: " % method if method else ""
        super().__init__("%s%s: %s" % (where, code.name, message))

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


class AbortedError(AnnealError):
    """An etag mismatch: someone else changed the schedule first."""


class ResourceExhaustedError(AnnealError):
    pass


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


def from_rpc_error(e: grpc.RpcError, method: str = "") -> AnnealError:
    """The AnnealError subclass for a failed call."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else None) or str(e)
    return _BY_CODE.get(code, AnnealError)(code, details, method)
