"""Roles and the permission each API action needs, as data.

Roles nest (viewer < trader < operator < admin) but every route names a permission, never a
role, so the table below is the whole policy and the tests walk it.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"
    TRADER = "trader"
    OPERATOR = "operator"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # markets, positions, orders, fills, PnL, risk, models, runbooks, workflows
    TRADE = "trade"  # start/stop/resume a market, change its parameters
    HALT = "halt"  # halt one market through its lifecycle
    ESTOP = "estop"  # emergency stop
    MODELS = "models"  # deploy, roll back
    KEYS = "keys"  # list key metadata, rotate
    BACKUPS = "backups"  # list and start backups
    RESTORE = "restore"  # restore a backup over the live stores
    RUNBOOKS = "runbooks"  # start, approve, abort
    AUDIT = "audit"  # read the audit log
    ADMIN = "admin"  # users and API keys


_VIEWER = {Permission.READ}
_TRADER = _VIEWER | {Permission.TRADE, Permission.HALT, Permission.ESTOP}
_OPERATOR = _TRADER | {
    Permission.MODELS,
    Permission.KEYS,
    Permission.BACKUPS,
    Permission.RUNBOOKS,
    Permission.AUDIT,
}
_ADMIN = _OPERATOR | {Permission.RESTORE, Permission.ADMIN}

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.TRADER: frozenset(_TRADER),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(_ADMIN),
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in GRANTS[role]
