"""Request and response bodies shared by the routes (strict: unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.auth.roles import Role

NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(Strict):
    username: str = Field(pattern=NAME)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    actor: str
    kind: str
    name: str
    role: Role
    permissions: list[str]


class UserCreate(Strict):
    username: str = Field(pattern=NAME)
    password: str = Field(min_length=12, max_length=256)
    role: Role


class User(BaseModel):
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class KeyCreate(Strict):
    name: str = Field(pattern=NAME)
    role: Role


class ApiKeyInfo(BaseModel):
    key_id: str
    name: str
    role: Role
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(BaseModel):
    key_id: str
    key: str = Field(description="shown once: store it now")
    name: str
    role: Role


class Page(BaseModel):
    """A page of rows; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[dict[str, Any]]
    next_cursor: str | None = None


class WorkflowRef(BaseModel):
    workflow_id: str
    run_id: str | None = None
    workflow_type: str


class Reason(Strict):
    reason: str = Field("", max_length=500)
