"""Notifications for operators (Slack, webhooks, email) and an optional social publisher."""

from flashmm.notify.channels import ChannelError, Notification
from flashmm.notify.config import (
    EmailConfig,
    NotifierConfig,
    RetryPolicy,
    Severity,
    SlackConfig,
    SocialConfig,
    WebhookConfig,
)
from flashmm.notify.notifier import ChannelResult, Notifier, NotifyResult
from flashmm.notify.social import PublishResult, SocialPublisher, format_summary

__all__ = [
    "ChannelError",
    "ChannelResult",
    "EmailConfig",
    "Notification",
    "Notifier",
    "NotifierConfig",
    "NotifyResult",
    "PublishResult",
    "RetryPolicy",
    "Severity",
    "SlackConfig",
    "SocialConfig",
    "SocialPublisher",
    "WebhookConfig",
    "format_summary",
]
