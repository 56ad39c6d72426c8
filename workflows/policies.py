"""Retry policies shared by the stop workflows (EmergencyStop, DeadmanSwitch), with the
project's own non-retryable error types (never Python's built-in names: a bug's ``KeyError``
must not pass for "this signing key cannot be used")."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# raised by activities as ApplicationError(type=...): retrying cannot help
KEY_UNAVAILABLE = "SigningKeyUnavailable"
COMMAND_REFUSED = "CommandRefused"
UNKNOWN_MARKET = "UnknownMarket"
MISCONFIGURED = "Misconfigured"

FAST = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_attempts=3,
    non_retryable_error_types=[COMMAND_REFUSED, UNKNOWN_MARKET, MISCONFIGURED],
)
# cancels: retried until the venue shows nothing resting (bounded by the caller's
# schedule-to-close timeout)
UNTIL_VERIFIED = RetryPolicy(
    initial_interval=timedelta(milliseconds=250),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    non_retryable_error_types=[KEY_UNAVAILABLE],
)
STEADY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=30)
)
# reads that help but must not hold a stop up (balances for reconciliation)
FEW = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_attempts=5,
    non_retryable_error_types=[KEY_UNAVAILABLE],
)
