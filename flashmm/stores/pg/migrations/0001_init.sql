-- FlashMM schema v1: trading records, risk state, audit log, registries.
CREATE TABLE orders (
    client_id     text PRIMARY KEY,
    market        text NOT NULL,
    side          smallint NOT NULL CHECK (side IN (-1, 1)),
    price         numeric NOT NULL,
    quantity      numeric NOT NULL,
    state         text NOT NULL,
    venue_id      bigint,
    reason        text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX orders_market_created ON orders (market, created_at);

CREATE TABLE fills (
    fill_id       text PRIMARY KEY,          -- the venue's execution id: one row per fill
    client_id     text NOT NULL,
    market        text NOT NULL,
    side          smallint NOT NULL CHECK (side IN (-1, 1)),
    price         numeric NOT NULL,
    quantity      numeric NOT NULL,
    fee           numeric NOT NULL,
    liquidity     text NOT NULL,
    ts            timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fills_market_ts ON fills (market, ts);

CREATE TABLE position_snapshots (
    id            bigserial PRIMARY KEY,
    market        text NOT NULL,
    ts            timestamptz NOT NULL,
    position      numeric NOT NULL,
    avg_price     numeric NOT NULL,
    realized      numeric NOT NULL,
    unrealized    numeric NOT NULL,
    fees          numeric NOT NULL,
    net_pnl       numeric NOT NULL,
    UNIQUE (market, ts)
);

CREATE TABLE daily_pnl (
    market        text NOT NULL,
    day           date NOT NULL,
    net_pnl       numeric NOT NULL,
    fills         integer NOT NULL,
    volume        numeric NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (market, day)
);

CREATE TABLE risk_state (
    market        text PRIMARY KEY,
    state         text NOT NULL CHECK (state IN ('active', 'reducing', 'halted')),
    halted        boolean NOT NULL,
    reason        text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL
);

CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    ts            timestamptz NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL,
    target        text NOT NULL,
    params        jsonb NOT NULL,
    outcome       text NOT NULL,
    request_id    text NOT NULL,
    prev_hash     text NOT NULL,
    hash          text NOT NULL UNIQUE
);

-- append-only: the audit log can be written, never changed
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE model_registry (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    version       text NOT NULL,
    path          text NOT NULL,
    schema_hash   text NOT NULL,
    metrics       jsonb NOT NULL DEFAULT '{}',
    status        text NOT NULL DEFAULT 'registered',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version)
);

CREATE TABLE key_metadata (
    key_id        text PRIMARY KEY,
    tier          text NOT NULL CHECK (tier IN ('cold', 'warm', 'hot')),
    address       text NOT NULL,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz
);

CREATE TABLE backups (
    id            text PRIMARY KEY,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    location      text NOT NULL,
    checksum      text,
    size_bytes    bigint,
    status        text NOT NULL,
    details       jsonb NOT NULL DEFAULT '{}'
);
