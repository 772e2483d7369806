"""anneal.errors: gRPC failures as typed exceptions, and the retry delay an
overloaded server sends (google.rpc.RetryInfo in grpc-status-details-bin),
read without Python packages for google.rpc (Debian has none)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2

anneal = pytest.importorskip("anneal")
from anneal import errors  # noqa: E402


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (payloads here are shorter than 128)."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _status_with_retry(seconds: int, nanos: int) -> bytes:
    delay = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    retry_info = _field(1, delay.SerializeToString())
    detail = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo",
                         value=retry_info)
    other = any_pb2.Any(type_url="type.googleapis.com/google.rpc.ErrorInfo",
                        value=b"\x0a\x03BAD")
    # google.rpc.Status: code (1), message (2), details (3, repeated).
    return (b"\x08\x08" + _field(2, b"busy") +
            _field(3, other.SerializeToString()) +
            _field(3, detail.SerializeToString()))


class FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailing=()):
        self._code, self._details, self._trailing = code, details, trailing

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing


def test_an_overloaded_server_is_retried_after_its_delay():
    e = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "count: the server is serving its limit of 4000000 range steps at "
        "once (max_inflight_range_steps), so 256 more must wait; retry "
        "shortly",
        [("grpc-status-details-bin", _status_with_retry(0, 200_000_000))]))
    assert isinstance(e, anneal.ResourceExhaustedError)
    assert e.retry_delay == pytest.approx(0.2)
    assert e.retryable
    assert e.field == "count"


def test_a_request_too_large_is_not_retried():
    e = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "count: must be <= 1000000 (the server's max_range_count), got 5"))
    assert e.retry_delay is None and not e.retryable


def test_unreadable_details_are_ignored():
    e = errors.from_rpc_error(FakeRpcError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "x: y",
        [("grpc-status-details-bin", b"\xff\xff\xff")]))
    assert e.retry_delay is None


def test_unavailable_is_retryable_and_names_no_field():
    e = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.UNAVAILABLE,
                                           "server: shutting down; retry"))
    assert isinstance(e, anneal.UnavailableError) and e.retryable
    assert e.field == "server"
