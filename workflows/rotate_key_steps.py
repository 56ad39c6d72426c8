"""RotateSigningKey's building blocks: retry policies, and the activity calls it is made of
(transfers prepared once and broadcast until they land, hot-path commands applied once per
run, keystore and balance reads, audit and notification)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.rotate_key_types import (
    CreateKeyRequest,
    KeyInfo,
    PreparedTransfer,
    RotateKeyInput,
    RotateKeyResult,
    TransferOutcome,
    TransferRequest,
)
from workflows.types import AuditEntry, HotpathCommand, Notice, host_queue

with workflow.unsafe.imports_passed_through():
    from activities.hotpath import HotpathActivities
    from activities.keys import KeyActivities
    from activities.records import RecordActivities

KEYSTORE = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["KeystoreError", "SigningKeyUnavailable", "KeyRetired"],
)
READ = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=10,
    non_retryable_error_types=["SigningKeyUnavailable", "KeystoreError"],
)
# the same signed bytes every attempt: retrying a broadcast cannot move funds twice
BROADCAST = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
    non_retryable_error_types=[
        "TransferStale",
        "TransferFailed",
        "TransferRefused",
        "InsufficientFunds",
        "SigningKeyUnavailable",
    ],
)
PREPARE = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=10,
    non_retryable_error_types=["InsufficientFunds", "SigningKeyUnavailable", "KeystoreError"],
)
SWITCH = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["CommandRefused", "UnknownMarket", "Misconfigured"],
)
HOT_STATUS = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownMarket", "Misconfigured"],
)
UNTIL_VERIFIED = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=["SigningKeyUnavailable"],
)
STEADY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
TRANSFER_ROUNDS = 3  # prepare again only when the chain proves the last bytes cannot land
DRAIN_ROUNDS = 3


def error_kind(e: BaseException) -> str:
    """The error type of an activity failure's cause, or of our own ApplicationError."""
    c = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
    return c.type if isinstance(c, ApplicationError) and c.type else type(c).__name__


def error_why(e: BaseException) -> str:
    c = e.cause if isinstance(e, ActivityError) and e.cause is not None else e
    return f"{error_kind(e)}: {c}"


class RotateSteps:
    """Activity calls of one rotation run (``run_tag`` names the run in command ids)."""

    run_tag: str

    async def _transfer(self, req: TransferRequest) -> TransferOutcome:
        """Prepare (sign) once, broadcast those bytes until they landed; prepare again only if
        the chain shows they never can (their sequence went to another transaction)."""
        stale = 0
        while True:
            prepared: PreparedTransfer = await workflow.execute_activity_method(
                KeyActivities.prepare_transfer,
                req,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=PREPARE,
            )
            if not prepared.amounts:
                return TransferOutcome("", 0, {}, 0, f"nothing to move: {prepared.note}")
            try:
                done: TransferOutcome = await workflow.execute_activity_method(
                    KeyActivities.broadcast_transfer,
                    prepared,
                    start_to_close_timeout=timedelta(seconds=60),
                    heartbeat_timeout=timedelta(seconds=10),
                    retry_policy=BROADCAST,
                )
                return done
            except ActivityError as e:
                stale += 1
                if error_kind(e) != "TransferStale" or stale >= TRANSFER_ROUNDS:
                    raise

    async def _hot(self, inp: RotateKeyInput, command: str, args: dict[str, Any]) -> dict[str, Any]:
        """A hot-path command, applied once per rotation run (the id is the run's)."""
        return await workflow.execute_activity_method(
            HotpathActivities.command,
            HotpathCommand(inp.market, f"{self.run_tag}/{command}", command, args),
            task_queue=host_queue(inp.market),
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=timedelta(minutes=5),
            retry_policy=SWITCH,
        )

    async def _hot_status(self, inp: RotateKeyInput) -> dict[str, Any]:
        return await workflow.execute_activity_method(
            HotpathActivities.status,
            inp.market,
            task_queue=host_queue(inp.market),
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=HOT_STATUS,
        )

    async def _describe(self, ref: str) -> KeyInfo:
        return await self._keys(KeyActivities.describe, ref)

    async def _retire(self, ref: str) -> KeyInfo:
        return await self._keys(KeyActivities.retire, ref)

    async def _keys(
        self, activity: Callable[[KeyActivities, str], Awaitable[KeyInfo]], ref: str
    ) -> KeyInfo:
        return await workflow.execute_activity_method(
            activity,
            ref,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=KEYSTORE,
        )

    async def _create(self, req: CreateKeyRequest) -> KeyInfo:
        return await workflow.execute_activity_method(
            KeyActivities.create,
            req,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=KEYSTORE,
        )

    async def _balances(self, address: str) -> dict[str, int]:
        return await workflow.execute_activity_method(
            KeyActivities.balances,
            address,
            start_to_close_timeout=timedelta(seconds=15),
            retry_policy=READ,
        )

    def _memo(self, step: str) -> str:
        return f"flashmm {self.run_tag}/{step}"

    async def _record(self, inp: RotateKeyInput, r: RotateKeyResult, severity: str) -> None:
        """Audit (once per run) and notify; neither may hide the outcome if it fails."""
        params = {
            "reason": inp.reason,
            "old_key_ref": r.old_key_ref,
            "old_address": r.old_address,
            "new_key_ref": r.new_key_ref,
            "new_address": r.new_address,
            "warm_key_ref": r.warm_key_ref,
            "funded": r.funded,
            "swept": r.swept,
            "drained": r.drained,
            "detail": r.detail,
        }
        try:
            r.audit_hash = await workflow.execute_activity_method(
                RecordActivities.audit,
                AuditEntry(
                    inp.actor, "rotate_signing_key", inp.market, params, r.outcome, self.run_tag
                ),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(minutes=10),
                retry_policy=STEADY,
            )
        except ActivityError as e:
            workflow.logger.error("audit of %s failed: %s", self.run_tag, e)
        text = (
            f"{r.outcome}: {r.old_key_ref or '?'} ({r.old_address or '?'}) -> {r.new_key_ref} "
            f"({r.new_address}); funded {r.funded}, swept {r.swept}, drained {r.drained}. "
            f"{inp.reason} (by {inp.actor}). {r.detail}"
        ).strip()
        try:
            r.notified = await workflow.execute_activity_method(
                RecordActivities.notify,
                Notice(f"Signing key rotation {inp.market}", text, severity, self.run_tag),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError as e:
            workflow.logger.error("notification of %s failed: %s", self.run_tag, e)
