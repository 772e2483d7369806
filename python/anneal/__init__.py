"""anneal: the Python client of the anneal learning-rate schedule service.

    import anneal
    client = anneal.Client("127.0.0.1:50051")
    client.create("resnet-1", {"max_lr": 0.1,
                               "warm_restarts": {"period": 10, "period_mult": 2}})
    client.evaluate("resnet-1", 0).lr
    client.report("resnet-1", 0, {"loss": 2.31})

    from anneal.torch import AnnealLR    # the PyTorch scheduler (needs torch)

Modules: client (the RPCs), results (typed results), errors, window (the
prefetch window), reporter (metric reports sent in the background), fallback (offline evaluation through annealctl), torch
(the scheduler), swa (snapshot callbacks), and the training-loop helpers
(need torch): curvature (the top Hessian eigenvalue, reported as
max_curvature), thermostat (the served gradient noise, injected) and
lr_range_test (Leslie Smith's LR range test on a served sweep). The
generated protobuf and gRPC
modules are anneal.v1.*_pb2. docs/python-client.md has the whole story.
"""

from anneal.client import Client, schedule_name, spec_to_json, to_spec
from anneal.errors import (AbortedError, AlreadyExistsError, AnnealError,
                           FailedPreconditionError, InvalidArgumentError,
                           NotFoundError, ResourceExhaustedError,
                           ServerUnreachableError, StaleLineageError,
                           UnavailableError)
from anneal.reporter import MetricReporter
from anneal.results import (FLAG_HAS_MOMENTUM, FLAG_RESTART, FLAG_SNAPSHOT,
                            Advanced, MetricReport, Phase, Rewind, Schedule,
                            Segment, StepRange, StepResult)
from anneal.window import (AnnealMismatchWarning, AnnealOutageWarning,
                           Backoff)

__all__ = [
    "AbortedError", "Advanced", "AlreadyExistsError", "AnnealError",
    "AnnealMismatchWarning", "AnnealOutageWarning", "Backoff", "Client",
    "FailedPreconditionError", "FLAG_HAS_MOMENTUM", "FLAG_RESTART",
    "FLAG_SNAPSHOT", "InvalidArgumentError", "MetricReport", "MetricReporter",
    "NotFoundError", "Phase",
    "ResourceExhaustedError", "Rewind", "Schedule", "Segment",
    "ServerUnreachableError", "StaleLineageError",
    "StepRange", "StepResult", "UnavailableError", "schedule_name",
    "spec_to_json", "to_spec",
]
