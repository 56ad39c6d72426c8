"""RotateSigningKey: replace the hot key a market's hot path signs with, without a moment in
which orders of an unfunded, unknown or retired key can rest on the venue.

Steps, each verified on the venue and safe to resume after a crash at any point:

1. create the new hot key in the keystore — found again by its label, which names the
   rotation (its first run id, ``rotation_label``), not the run: a retried activity, and a
   run that was reset, never make a second one;
2. fund it from the warm key with a bank transfer topping it up to the requested balances
   (a retry or a second run finds it funded and sends nothing);
3. switch the hot path to it (``switch_key`` on the market's host queue, with command ids
   unique to this run: a retried command is applied once). A trading hot path is stopped
   for the switch and started again right after — only if it is still stopped for this
   rotation, so an operator's stop or halt meanwhile stands. The switch is the commit point:
   if it is refused, quoting resumes on the old key, the new key's funds go back to the warm
   key and it is retired (compensation), and the workflow fails with
   ``KeyRotationRolledBack``;
4. drain the old key: let its last transactions land, cancel what it left on the venue until
   none remain, and check again;
5. sweep the old key's funds back to the warm key, less the fee;
6. retire the old key; audit and notify.

Reset: a run reset to an earlier point starts over with the rotation's key (found by its label)
and tops it up only to what it lacks (nothing, once funded). Reset after the switch, it finds
that key live on the hot path and stops with ``RotationAlreadySwitched`` (audited, notified):
no second key, and no rollback that would sweep or retire the live key; the old key's drain,
sweep and retirement are left to the operator (docs/runbook.md, "Rotating secrets"). A reset
of a rolled-back run stops at ``keys_create`` (``KeyRetired``) before anything moves.

Every transfer is prepared (balances read, transaction signed) by one activity and broadcast
by another: the signed bytes are recorded in the history, so a retried broadcast sends the
same bytes, which can land at most once. Only when the chain proves those bytes can never
land (their sequence went to another transaction) is the transfer prepared again, from the
balances as they are then. Inputs, outputs and pure helpers are in ``rotate_key_types``;
retry policies and the activity calls in ``rotate_key_steps``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.rotate_key_steps import (
    DRAIN_ROUNDS,
    READ,
    UNTIL_VERIFIED,
    RotateSteps,
    error_kind,
    error_why,
)
from workflows.rotate_key_types import (
    FEE_DENOM,
    CreateKeyRequest,
    KeyInfo,
    PreparedTransfer,
    RotateKeyInput,
    RotateKeyResult,
    TransferOutcome,
    TransferRequest,
    funding_target,
    input_problems,
    rotation_id,
    rotation_label,
)
from workflows.types import VenueRequest

with workflow.unsafe.imports_passed_through():
    from activities.venue import VenueActivities

__all__ = [
    "FEE_DENOM",
    "CreateKeyRequest",
    "KeyInfo",
    "PreparedTransfer",
    "RotateKeyInput",
    "RotateKeyResult",
    "RotateSigningKey",
    "TransferOutcome",
    "TransferRequest",
    "funding_target",
    "input_problems",
    "rotation_id",
    "rotation_label",
]


class _SwitchedEarlierError(Exception):
    """The hot path already signs with this rotation's new key: an earlier run of the same
    rotation (one that was reset) made the switch."""


@workflow.defn(name="RotateSigningKey")
class RotateSigningKey(RotateSteps):
    def __init__(self) -> None:
        self.phase = "starting"
        self.run_tag = ""
        self.pause_reason = ""  # from the new key's ref (history), never from ids: replay-safe
        self.r: RotateKeyResult | None = None

    @workflow.query
    def progress(self) -> dict[str, Any]:
        r = self.r
        return {
            "phase": self.phase,
            "old_key_ref": r.old_key_ref if r else "",
            "new_key_ref": r.new_key_ref if r else "",
            "new_address": r.new_address if r else "",
        }

    @workflow.run
    async def run(self, inp: RotateKeyInput) -> RotateKeyResult:
        problems = input_problems(inp)
        if problems:
            raise ApplicationError("; ".join(problems), type="InvalidRequest", non_retryable=True)
        info = workflow.info()
        self.run_tag = f"{info.workflow_id}/{info.run_id}"
        r = self.r = RotateKeyResult(inp.market, warm_key_ref=inp.warm_key_ref)

        self.phase = "checking the warm key"
        warm = await self._describe(inp.warm_key_ref)
        if warm.status != "active" or warm.tier not in ("warm", "dev"):
            raise ApplicationError(
                f"{inp.warm_key_ref} is a {warm.status} {warm.tier} key, not an active warm key",
                type="InvalidRequest",
                non_retryable=True,
            )
        r.warm_address = warm.address

        self.phase = "creating the new key"
        # labelled by the rotation, not the run: a reset run finds the first run's key
        label = rotation_label(inp.market, info.first_execution_run_id or info.run_id)
        new = await self._create(CreateKeyRequest("hot", label))
        r.new_key_ref, r.new_address = new.ref, new.address
        self.pause_reason = f"key rotation to {new.ref}"

        # --- before the commit point: any failure gives the new key's funds back -----------
        try:
            await self._fund(inp, r, new)
            old, trading = await self._current_key(inp, r, new)
        except _SwitchedEarlierError as e:  # a reset run: nothing to undo, nothing to do twice
            r.outcome, r.detail = "incomplete", str(e)
            await self._record(inp, r, "critical")
            self.phase = r.outcome
            raise ApplicationError(
                r.detail, r, type="RotationAlreadySwitched", non_retryable=True
            ) from None
        except (ActivityError, ApplicationError) as e:
            await self._roll_back(inp, r, new, error_why(e))
        paused = await self._switch(inp, r, new, trading)

        # --- after the commit point: the hot path signs with the new key; finish the rest --
        try:
            if paused:
                self.phase = "resuming quoting"
                r.verification["quoting_resumed"] = await self._resume_quoting(inp)
            await self._drain_and_sweep(inp, r, old, warm)
            self.phase = "retiring the old key"
            retired = await self._retire(old.ref)
            r.verification["old_key_status"] = retired.status
        except (ActivityError, ApplicationError) as e:
            r.outcome, r.detail = "incomplete", error_why(e)
            await self._record(inp, r, "critical")
            raise
        r.outcome = "rotated"
        await self._record(inp, r, "info")
        self.phase = "done"
        return r

    # --- steps ------------------------------------------------------------------------------
    async def _fund(self, inp: RotateKeyInput, r: RotateKeyResult, new: KeyInfo) -> None:
        self.phase = "funding the new key"
        target = funding_target(inp)
        done = await self._transfer(
            TransferRequest(
                inp.market, inp.warm_key_ref, new.address, "top_up", target, self._memo("fund")
            )
        )
        r.funded, r.funding_fee, r.funding_tx = done.amounts, done.fee, done.tx_hash
        have = await self._balances(new.address)
        short = {d: v for d, v in target.items() if have.get(d, 0) < v}
        r.verification["new_balances_funded"] = have
        if short:
            raise ApplicationError(
                f"the new key holds less than requested after funding: {short}",
                type="FundingNotVerified",
                non_retryable=True,
            )

    async def _current_key(
        self, inp: RotateKeyInput, r: RotateKeyResult, new: KeyInfo
    ) -> tuple[KeyInfo, bool]:
        """The key the hot path signs with now (the one to rotate out), and whether it
        trades."""
        self.phase = "asking the hot path"
        status = await self._hot_status(inp)
        current = str(status.get("key_ref") or "")
        if current == new.ref:  # checked first: rolling back would sweep the live key
            raise _SwitchedEarlierError(
                f"the hot path already signs with this rotation's key {new.ref}: an earlier run "
                "of this rotation (reset since) switched it; the new key is neither funded "
                "again nor undone. Drain, sweep and retire the old key by hand (runbook: "
                "Rotating secrets), or start a new rotation"
            )
        if not current.startswith("keystore:"):
            raise ApplicationError(
                f"the hot path of {inp.market} signs with its configured key, not a keystore "
                "key: switch it to a keystore key first",
                type="InvalidRequest",
                non_retryable=True,
            )
        if inp.old_key_ref and current != inp.old_key_ref:
            raise ApplicationError(
                f"the hot path signs with {current}, not {inp.old_key_ref}",
                type="InvalidRequest",
                non_retryable=True,
            )
        if current in (inp.warm_key_ref, new.ref):
            raise ApplicationError(
                f"the hot path already signs with {current}",
                type="InvalidRequest",
                non_retryable=True,
            )
        old = await self._describe(current)
        r.old_key_ref, r.old_address = old.ref, old.address
        return old, status.get("desired") == "trading"

    async def _switch(
        self, inp: RotateKeyInput, r: RotateKeyResult, new: KeyInfo, trading: bool
    ) -> bool:
        """``switch_key``, with quoting paused around it when the hot path trades and
        ``pause_quoting`` is set; answers whether it paused. Refused (or failed, and the hot
        path still on the old key): resume quoting, roll back. Failed and the hot path
        unreachable: the outcome is unknown, so nothing is undone."""
        paused = trading and inp.pause_quoting
        try:
            if paused:
                self.phase = "pausing quoting"
                await self._hot(inp, "stop", {"reason": self.pause_reason, "timeout_s": 10.0})
            self.phase = "switching"
            answer = await self._hot(
                inp, "switch_key", {"key_ref": new.ref, "reason": inp.reason or "key rotation"}
            )
            state = answer.get("state") or {}
            address = (answer.get("detail") or {}).get("address", new.address)
        except ActivityError as e:
            why = f"switch failed: {error_why(e)}"
            try:
                state = await self._hot_status(inp)
            except ActivityError:
                r.outcome, r.detail = "incomplete", f"{why}; hot path unreachable: outcome unknown"
                await self._record(inp, r, "critical")
                raise ApplicationError(
                    r.detail, type="SwitchOutcomeUnknown", non_retryable=True
                ) from e
            if state.get("key_ref") != new.ref:
                if paused:
                    try:
                        r.verification["quoting_resumed"] = await self._resume_quoting(inp)
                    except ActivityError as resume_error:
                        r.verification["quoting_resumed"] = False
                        why = f"{why}; quoting not resumed: {error_why(resume_error)}"
                await self._roll_back(inp, r, new, why)
            address = new.address  # the command was applied after all
        r.verification["hotpath_key_ref"] = state.get("key_ref")
        r.verification["hotpath_address"] = address
        if state.get("key_ref") != new.ref or address != new.address:
            r.outcome = "incomplete"
            r.detail = f"hot path reports {state.get('key_ref')} at {address} after the switch"
            await self._record(inp, r, "critical")
            raise ApplicationError(r.detail, type="SwitchNotVerified", non_retryable=True)
        return paused

    async def _resume_quoting(self, inp: RotateKeyInput) -> bool:
        """Start the hot path again if it is still stopped for this rotation (an operator's
        stop or halt in the meantime stands); answers whether it was started."""
        status = await self._hot_status(inp)
        if status.get("desired") != "stopped" or status.get("reason") != self.pause_reason:
            workflow.logger.warning("hot path not resumed: it is %s", status.get("desired"))
            return False
        await self._hot(inp, "start", {"reason": self.pause_reason})
        return True

    async def _drain_and_sweep(
        self, inp: RotateKeyInput, r: RotateKeyResult, old: KeyInfo, warm: KeyInfo
    ) -> None:
        """Cancel what the old key left (its in-flight transactions land first), verify none
        remain, then sweep; a sweep refused for funds that orders still hold drains again."""
        for attempt in range(DRAIN_ROUNDS):
            self.phase = "draining the old key"
            if inp.drain_s > 0:
                await workflow.sleep(timedelta(seconds=inp.drain_s))
            venue = await workflow.execute_activity_method(
                VenueActivities.cancel_all,
                VenueRequest(inp.market, old.ref),
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=UNTIL_VERIFIED,
            )
            r.drained += venue.cancelled
            left = await workflow.execute_activity_method(
                VenueActivities.open_orders,
                VenueRequest(inp.market, old.ref),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=READ,
            )
            r.verification["old_open_orders"] = left
            if left:
                continue  # landed after the cancel: drain again
            self.phase = "sweeping the old key"
            try:
                done = await self._transfer(
                    TransferRequest(
                        inp.market, old.ref, warm.address, "sweep", memo=self._memo("sweep")
                    )
                )
            except ActivityError as e:
                if error_kind(e) != "InsufficientFunds" or attempt == DRAIN_ROUNDS - 1:
                    raise
                continue
            r.swept, r.sweep_fee, r.sweep_tx = done.amounts, done.fee, done.tx_hash
            r.verification["old_balances_left"] = await self._balances(old.address)
            return
        raise ApplicationError(
            f"the old key still has {r.verification.get('old_open_orders')} open order(s)",
            type="DrainNotVerified",
            non_retryable=True,
        )

    async def _roll_back(
        self, inp: RotateKeyInput, r: RotateKeyResult, new: KeyInfo, why: str
    ) -> NoReturn:
        """Compensation: the new key's funds back to the warm key, the new key retired. Always
        raises: the rotation did not happen."""
        self.phase = "rolling back"
        r.detail = why
        try:
            back = await self._transfer(
                TransferRequest(
                    inp.market, new.ref, r.warm_address, "sweep", memo=self._memo("rollback")
                )
            )
            r.swept, r.sweep_fee, r.sweep_tx = back.amounts, back.fee, back.tx_hash
            r.verification["new_balances_left"] = await self._balances(new.address)
            retired = await self._retire(new.ref)
            r.verification["new_key_status"] = retired.status
            r.outcome = "rolled back"
        except (ActivityError, ApplicationError) as e:
            r.outcome = "rollback incomplete"
            r.detail = f"{why}; rollback: {error_why(e)}"
        calm = r.outcome == "rolled back" and r.verification.get("quoting_resumed") is not False
        await self._record(inp, r, "warning" if calm else "critical")
        self.phase = r.outcome
        raise ApplicationError(
            f"key rotation {r.outcome}: {r.detail}",
            r,
            type="KeyRotationRolledBack",
            non_retryable=True,
        )
