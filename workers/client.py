"""Connecting to Temporal with the payload codec, and starting the platform's workflows."""

from __future__ import annotations

import dataclasses
import os
import uuid

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from flashmm import tracing
from flashmm.temporal.codec import EncryptionCodec
from workflows.deadman import DeadmanInput, DeadmanResult, deadman_id
from workflows.types import (
    CONTROL_QUEUE,
    EmergencyStopInput,
    EmergencyStopResult,
    LifecycleInput,
    lifecycle_id,
)

DEFAULT_ADDRESS = "127.0.0.1:7233"


def data_converter(*, strict: bool = False) -> DataConverter:
    """Encrypting converter when codec keys are configured; plain otherwise. With the codec,
    failure messages and stack traces are encoded too (they can hold addresses, balances).
    ``strict`` (workers): a plain payload is refused, not acted on."""
    if os.environ.get("FLASHMM_CODEC_KEYS"):
        return encrypting(EncryptionCodec.from_env(strict=strict))
    return DataConverter.default


def encrypting(codec: EncryptionCodec) -> DataConverter:
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


async def connect(
    address: str | None = None, namespace: str = "default", *, strict: bool = False
) -> Client:
    """``strict``: for workers, which must not act on input sent without the codec key."""
    return await Client.connect(
        address or os.environ.get("FLASHMM_TEMPORAL_ADDRESS", DEFAULT_ADDRESS),
        namespace=namespace,
        data_converter=data_converter(strict=strict),
        interceptors=tracing.temporal_interceptors(),  # none while tracing is off
    )


async def ensure_lifecycle(
    client: Client, market: str, state: str = "STOPPED"
) -> WorkflowHandle[object, None]:
    """Start the market's lifecycle workflow, or attach to the running one."""
    handle: WorkflowHandle[object, None] = await client.start_workflow(
        "TradingLifecycle",
        LifecycleInput(market, state),
        id=lifecycle_id(market),
        task_queue=CONTROL_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return handle


async def start_emergency_stop(
    client: Client, inp: EmergencyStopInput
) -> WorkflowHandle[object, EmergencyStopResult]:
    """Signal-with-start: a stop for markets whose stop is still running joins that run and
    is carried out after it (never dropped); otherwise a new run starts. Each request gets
    its own id when the caller gave none."""
    if not inp.request_id:
        inp = dataclasses.replace(inp, request_id=uuid.uuid4().hex)
    handle: WorkflowHandle[object, EmergencyStopResult] = await client.start_workflow(
        "EmergencyStop",
        inp,
        id="estop/" + "+".join(sorted(inp.markets)),
        task_queue=CONTROL_QUEUE,
        result_type=EmergencyStopResult,
        start_signal="also_stop",
        start_signal_args=[inp],
    )
    return handle


async def start_deadman(client: Client, inp: DeadmanInput) -> WorkflowHandle[object, DeadmanResult]:
    """One run per incident: a second start for the same incident (a restarted watcher)
    joins the running one, or finds the finished one and starts nothing."""
    from temporalio.exceptions import WorkflowAlreadyStartedError

    wf_id = deadman_id(inp.market, inp.incarnation, inp.last_cycle_at)
    try:
        handle: WorkflowHandle[object, DeadmanResult] = await client.start_workflow(
            "DeadmanSwitch",
            inp,
            id=wf_id,
            task_queue=CONTROL_QUEUE,
            result_type=DeadmanResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(wf_id, result_type=DeadmanResult)
    return handle
