-- FlashMM schema v2: the operator API's identities, refresh tokens, started workflows and
-- emergency stops waiting for Temporal.
CREATE TABLE api_users (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,              -- scrypt, salted; never the password
    role          text NOT NULL CHECK (role IN ('viewer', 'trader', 'operator', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    name          text NOT NULL,
    secret_hash   text NOT NULL,              -- sha256 of the key's secret part
    role          text NOT NULL CHECK (role IN ('viewer', 'trader', 'operator', 'admin')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);

CREATE TABLE api_refresh_tokens (
    jti           text PRIMARY KEY,
    username      text NOT NULL REFERENCES api_users (username),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    replaced_by   text
);
CREATE INDEX api_refresh_tokens_user ON api_refresh_tokens (username);

CREATE TABLE api_workflows (
    workflow_id   text PRIMARY KEY,
    workflow_type text NOT NULL,
    started_by    text NOT NULL,
    request_id    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_workflows_created ON api_workflows (created_at);

CREATE TABLE pending_estops (
    id            text PRIMARY KEY,           -- the API request id
    markets       jsonb NOT NULL,
    reason        text NOT NULL,
    actor         text NOT NULL,
    flatten       boolean NOT NULL DEFAULT false,
    loss_budget   numeric NOT NULL DEFAULT 0,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    workflow_id   text,
    started_at    timestamptz
);
