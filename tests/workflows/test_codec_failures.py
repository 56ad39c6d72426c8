"""With the codec on, a failure's message (which can name addresses and balances) is
encrypted in history like every payload; operators with the key still read it."""

from __future__ import annotations

import uuid

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from flashmm.temporal.client import encrypting
from flashmm.temporal.codec import EncryptionCodec, new_key_spec, parse_keys

SECRET = "sei1qqqqsecretaddress holds 987654321 usei"


@activity.defn(name="leaky")
async def leaky() -> None:
    raise ApplicationError(f"balance check failed for {SECRET}", non_retryable=True)


@workflow.defn(name="Leaky", sandboxed=False)
class Leaky:
    @workflow.run
    async def run(self) -> None:
        from datetime import timedelta

        await workflow.execute_activity(
            "leaky",
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


async def test_failure_messages_are_encrypted_in_history(dev_env: WorkflowEnvironment) -> None:
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    client = Client(
        dev_env.client.service_client,
        namespace=dev_env.client.namespace,
        data_converter=encrypting(codec),
    )
    wid = f"leaky-{uuid.uuid4()}"
    async with Worker(client, task_queue="leaky", workflows=[Leaky], activities=[leaky]):
        with pytest.raises(WorkflowFailureError) as e:
            await client.execute_workflow(Leaky.run, id=wid, task_queue="leaky")
    # with the key: the message is there for operators
    assert SECRET in str(e.value.cause.cause)  # type: ignore[union-attr]
    # without it (what the server and anyone reading its database sees): not a trace of it
    raw = await dev_env.client.get_workflow_handle(wid).fetch_history()
    text = raw.to_json()
    assert "sei1qqqqsecretaddress" not in text and "987654321" not in text
    assert "Encoded failure" in text
