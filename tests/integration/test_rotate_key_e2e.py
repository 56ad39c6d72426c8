"""RotateSigningKey with the real parts.

* bank transfers on the localnet chain (``MsgSend``): debit/credit, new recipients, code 5
  at admission and in the block, funds held by open orders, malformed coins;
* the real key/transfer activities against an in-process localnet and a real keystore: a
  key created once per label, a broadcast retried after its transaction landed (or while it
  sits in the mempool) moving nothing twice, a transfer whose sequence was taken reported
  stale, a sweep leaving nothing;
* end to end: a localnet process whose genesis funds the warm key (``localnet.accounts``), a
  hot-path process trading with its control API and a keystore key, a Temporal dev server,
  real workers, PostgreSQL for the audit log — the hot path ends up signing with the new key
  and the old one is drained, swept and retired; and the control worker killed with SIGKILL
  between funding and switching, restarted, with balances compared to the unit.

``python -m tests.integration.test_rotate_key_e2e`` runs the control worker of the crash
test (configured from the environment, like ``flashmm worker control``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.hotpath import HotpathActivities
from activities.keys import KeyActivities
from activities.records import RecordActivities
from activities.venue import VenueActivities
from flashmm.config import Settings, load_settings
from flashmm.keys.keystore import Keystore
from flashmm.localnet import errors
from flashmm.localnet.chain import INVALID_COINS, Chain
from flashmm.localnet.config import GenesisAccount
from flashmm.venue.sei.tx import FEE_DENOM, build_tx, decode_tx, send_msg
from flashmm.venue.sei.wallet import Wallet, dev_mnemonic
from tests.integration.localnet_helpers import (
    CHAIN_ID,
    SEI,
    USDC,
    Rest,
    localnet,
    localnet_cfg,
    sei_spec,
    urls,
)
from workflows.rotate_key import (
    CreateKeyRequest,
    RotateKeyInput,
    RotateKeyResult,
    RotateSigningKey,
    TransferRequest,
    rotation_id,
)
from workflows.types import CONTROL_QUEUE, host_queue

MARKET = "SEI/USDC"
SECRET = "e2e-keystore-secret-0123456789"
FEE = 2_400  # what the activities pay for a transfer: 120k gas at 0.02 usei
GAS = 120_000


def _w(name: str) -> Wallet:
    return Wallet.from_mnemonic(dev_mnemonic(name))


def _send(
    w: Wallet, to: str, coins: dict[str, int], seq: int, number: int, fee: int = FEE
) -> bytes:
    return build_tx(
        w,
        [send_msg(w.address, to, coins)],
        chain_id=CHAIN_ID,
        account_number=number,
        sequence=seq,
        gas_limit=GAS,
        fee_amount=fee,
    )


# --- the chain ------------------------------------------------------------------------------


def _chain(*accounts: tuple[Wallet, dict[str, int]]) -> Chain:
    return Chain(
        localnet_cfg(
            genesis=tuple(GenesisAccount(w.address, tuple(b.items())) for w, b in accounts)
        )
    )


def _bal(chain: Chain, w: Wallet | str) -> dict[str, int]:
    addr = w if isinstance(w, str) else w.address
    return {d: v for d, v in chain.accounts[addr].balances.items() if v}


def test_bank_send_moves_funds_in_its_block_and_opens_the_recipients_account() -> None:
    a, b = _w("send-a"), _w("send-b")
    chain = _chain((a, {"usei": 10 * SEI, "uusdc": 5 * USDC}))
    tx = _send(a, b.address, {"uusdc": 2 * USDC, "usei": SEI}, 0, 1)
    assert [u for u, _ in decode_tx(tx).messages] == ["/cosmos.bank.v1beta1.MsgSend"]
    chain.check_tx(tx)
    assert _bal(chain, a) == {"usei": 10 * SEI - FEE, "uusdc": 5 * USDC}  # fee at admission
    assert b.address not in chain.accounts
    block = chain.produce_block(1.0)
    (r,) = block.txs
    assert r.code == 0 and r.gas_used == chain.cfg.gas_needed(0, 0)
    assert _bal(chain, a) == {"usei": 9 * SEI - FEE, "uusdc": 3 * USDC}
    assert _bal(chain, b) == {"usei": SEI, "uusdc": 2 * USDC}
    kinds = [e["type"] for e in r.events]
    assert kinds == ["message", "coin_spent", "coin_received", "transfer"]
    transfer = {x["key"]: x["value"] for x in r.events[-1]["attributes"]}
    assert transfer == {
        "recipient": b.address,
        "sender": a.address,
        "amount": f"{SEI}usei,{2 * USDC}uusdc",
    }
    assert chain.accounts[b.address].number == 2 and chain.accounts[a.address].sequence == 1


def test_bank_send_over_the_free_balance_is_code_5_at_admission() -> None:
    a, b = _w("send-a"), _w("send-b")
    chain = _chain((a, {"usei": 10 * SEI, "uusdc": 5 * USDC}))
    with pytest.raises(errors.TxError) as e:
        chain.check_tx(_send(a, b.address, {"uusdc": 5 * USDC + 1}, 0, 1))
    assert e.value.code == errors.INSUFFICIENT_FUNDS and "insufficient funds" in e.value.log
    with pytest.raises(errors.TxError) as e:  # all the usei, but the fee needs some too
        chain.check_tx(_send(a, b.address, {"usei": 10 * SEI}, 0, 1))
    assert e.value.code == errors.INSUFFICIENT_FUNDS
    assert _bal(chain, a) == {"usei": 10 * SEI, "uusdc": 5 * USDC}  # refused: nothing charged
    assert chain.accounts[a.address].sequence == 0


def test_bank_send_cannot_spend_what_open_orders_hold() -> None:
    from flashmm.domain.orders import Side

    a, b = _w("send-a"), _w("send-b")
    chain = _chain((a, {"usei": 10 * SEI, "uusdc": 100 * USDC}))
    market = next(iter(chain.markets.values()))
    # a resting buy far below the market holds 0.1 × 500 = 50 USDC
    market.place(chain.accounts[a.address], Side.BUY, 1_000, 500, "hold", True, chain.by_number)
    assert market.reserved(chain.accounts[a.address])["uusdc"] == 50 * USDC
    with pytest.raises(errors.TxError) as e:
        chain.check_tx(_send(a, b.address, {"uusdc": 51 * USDC}, 0, 1))
    assert e.value.code == errors.INSUFFICIENT_FUNDS
    chain.check_tx(_send(a, b.address, {"uusdc": 50 * USDC}, 0, 1))
    assert chain.produce_block(1.0).txs[0].code == 0


def test_bank_send_that_no_longer_fits_fails_in_its_block_with_its_fee_kept() -> None:
    a, b = _w("send-a"), _w("send-b")
    chain = _chain((a, {"usei": 10 * SEI, "uusdc": 5 * USDC}))
    chain.check_tx(_send(a, b.address, {"uusdc": 3 * USDC}, 0, 1))
    chain.check_tx(_send(a, b.address, {"uusdc": 3 * USDC}, 1, 1))  # each fits on its own
    first, second = chain.produce_block(1.0).txs
    assert first.code == 0
    assert second.code == errors.INSUFFICIENT_FUNDS and "insufficient funds" in second.log
    assert second.events == []
    assert _bal(chain, a) == {"usei": 10 * SEI - 2 * FEE, "uusdc": 2 * USDC}
    assert _bal(chain, b) == {"uusdc": 3 * USDC}


def test_malformed_bank_sends_are_refused() -> None:
    from cosmpy.protos.cosmos.bank.v1beta1.tx_pb2 import MsgSend

    from flashmm.venue.sei.tx import MarketRef, cancel_msg

    a, b = _w("send-a"), _w("send-b")
    chain = _chain((a, {"usei": 10 * SEI, "uusdc": 5 * USDC}), (b, {"usei": SEI}))

    def raw(msgs: list[Any]) -> bytes:
        return build_tx(
            a, msgs, chain_id=CHAIN_ID, account_number=1, sequence=0, gas_limit=GAS, fee_amount=FEE
        )

    unsorted = MsgSend(from_address=a.address, to_address=b.address)
    unsorted.amount.add(denom="uusdc", amount="1")
    unsorted.amount.add(denom="usei", amount="1")
    zero = MsgSend(from_address=a.address, to_address=b.address)
    zero.amount.add(denom="usei", amount="0")
    empty = MsgSend(from_address=a.address, to_address=b.address)
    bad_to = MsgSend(from_address=a.address, to_address="sei1nope")
    bad_to.amount.add(denom="usei", amount="1")
    not_mine = MsgSend(from_address=b.address, to_address=a.address)  # signed by a
    not_mine.amount.add(denom="usei", amount="1")
    spec = sei_spec()
    mref = MarketRef(spec.contract, spec.price_denom, spec.asset_denom, spec.instrument)
    mixed = [send_msg(a.address, b.address, {"usei": 1}), cancel_msg(a.address, mref, [])]
    for msgs, code in (
        ([unsorted], INVALID_COINS),
        ([zero], INVALID_COINS),
        ([empty], INVALID_COINS),
        ([bad_to], errors.INVALID_ADDRESS),
        ([not_mine], errors.INVALID_PUBKEY),
        (mixed, errors.INVALID_REQUEST),
    ):
        with pytest.raises(errors.TxError) as e:
            chain.check_tx(raw(msgs))
        assert e.value.code == code, (msgs, e.value)
    with pytest.raises(ValueError):
        send_msg(a.address, b.address, {"usei": 0})
    assert chain.accounts[a.address].sequence == 0


# --- the real activities against an in-process localnet -----------------------------------


@dataclass
class Keys:
    ks: Keystore
    warm: Any  # KeyMeta
    settings: Settings
    acts: KeyActivities
    rest: Rest


@asynccontextmanager
async def _keys_world(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Keys]:
    monkeypatch.setenv("FLASHMM_KEYSTORE_SECRET", SECRET)
    ks = Keystore(tmp / "keystore", SECRET)
    warm = ks.create("warm", "activity test warm")
    cfg = localnet_cfg(
        genesis=(GenesisAccount(warm.address, (("usei", 1_000 * SEI), ("uusdc", 500 * USDC))),)
    )
    async with localnet(cfg) as node:
        rest_url, ws_url = urls(node)
        s = load_settings(
            venue={"rest_urls": [rest_url], "ws_urls": [ws_url], "chain_id": CHAIN_ID},
            hotpath={"keystore_dir": str(tmp / "keystore")},
        )
        rest = Rest(rest_url)
        try:
            yield Keys(ks, warm, s, KeyActivities(s, confirm_timeout_s=2.0, poll_s=0.05), rest)
        finally:
            await rest.close()


async def test_activities_create_once_and_never_transfer_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _keys_world(tmp_path, monkeypatch) as k:
        env = ActivityEnvironment()
        a = k.acts
        # one key per label, however often the activity runs
        new = await env.run(a.create, CreateKeyRequest("hot", "rotation X run-1"))
        again = await env.run(a.create, CreateKeyRequest("hot", "rotation X run-1"))
        assert again == new and new.tier == "hot" and new.status == "active"
        assert [m.label for m in k.ks.list()].count("rotation X run-1") == 1
        warm = f"keystore:{k.warm.key_id}"
        assert (await env.run(a.describe, warm)).tier == "warm"
        target = {"usei": 100 * SEI, "uusdc": 50 * USDC}
        req = TransferRequest(MARKET, warm, new.address, "top_up", target, "fund")
        p = await env.run(a.prepare_transfer, req)
        assert p.amounts == target and p.fee == FEE and p.sequence == 0
        # the bytes reach the mempool, then the activity's worker dies before it learns more:
        # the retry finds them pending (or landed) and waits for the block — one transfer
        import base64

        assert (await k.rest.broadcast(base64.b64decode(p.tx_b64)))["code"] == 0
        first = await env.run(a.broadcast_transfer, p)
        assert first.how in ("landed", "found landed") and first.height > 0
        retried = await env.run(a.broadcast_transfer, p)
        assert retried.how == "found landed" and retried.tx_hash == first.tx_hash
        assert await k.rest.balances(new.address) == target
        assert await k.rest.sequence(k.warm.address) == 1
        assert await k.rest.balances(k.warm.address) == {
            "usei": 900 * SEI - FEE,
            "uusdc": 450 * USDC,
        }
        # prepared again once funded: nothing to move
        assert (await env.run(a.prepare_transfer, req)).amounts == {}
        # sweep back: everything but the fee, nothing left
        sweep = await env.run(
            a.prepare_transfer, TransferRequest(MARKET, new.ref, k.warm.address, "sweep")
        )
        assert sweep.amounts == {"usei": 100 * SEI - FEE, "uusdc": 50 * USDC}
        await env.run(a.broadcast_transfer, sweep)
        assert await env.run(a.balances, new.address) == {}
        assert (
            await env.run(
                a.prepare_transfer, TransferRequest(MARKET, new.ref, k.warm.address, "sweep")
            )
        ).amounts == {}
        retired = await env.run(a.retire, new.ref)
        assert retired.status == "retired" and (await env.run(a.retire, new.ref)) == retired
        with pytest.raises(ApplicationError) as e:  # a retired key cannot sign any more
            await env.run(
                a.prepare_transfer, TransferRequest(MARKET, new.ref, k.warm.address, "sweep")
            )
        assert e.value.type == "SigningKeyUnavailable"


async def test_transfer_whose_sequence_was_taken_is_stale_and_moves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with _keys_world(tmp_path, monkeypatch) as k:
        env = ActivityEnvironment()
        a = k.acts
        warm = f"keystore:{k.warm.key_id}"
        to = _w("stale-target").address
        p = await env.run(
            a.prepare_transfer, TransferRequest(MARKET, warm, to, "top_up", {"uusdc": USDC})
        )
        # another transaction of the warm key takes the sequence first
        other = _send(k.ks.wallet(k.warm.key_id), _w("other").address, {"usei": 1}, 0, 1)
        assert (await k.rest.broadcast(other))["code"] == 0
        with pytest.raises(ApplicationError) as e:
            await env.run(a.broadcast_transfer, p)
        assert e.value.type == "TransferStale" and e.value.non_retryable
        assert await k.rest.balances(to) == {}
        with pytest.raises(ApplicationError) as e:  # more than the warm key holds
            await env.run(
                a.prepare_transfer,
                TransferRequest(MARKET, warm, to, "top_up", {"uusdc": 501 * USDC}),
            )
        assert e.value.type == "InsufficientFunds"


# --- end to end -------------------------------------------------------------------------------


@dataclass
class Platform:
    settings: Settings
    env: dict[str, str]
    ks: Keystore
    warm_ref: str
    warm_address: str
    old_ref: str
    old_address: str
    contract: str
    control_url: str
    token: str
    rest: Rest
    temporal: WorkflowEnvironment
    pg: str

    async def command(self, command_id: str, command: str, args: dict[str, Any]) -> Any:
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{self.control_url}/v1/commands",
                headers={"Authorization": f"Bearer {self.token}"},
                json={"command_id": command_id, "command": command, "args": args},
            ) as r,
        ):
            assert r.status == 200, await r.text()
            return await r.json()

    async def status(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{self.control_url}/v1/status", headers={"Authorization": f"Bearer {self.token}"}
            ) as r,
        ):
            data: dict[str, Any] = await r.json()
            return data

    async def orders(self, address: str) -> int:
        return len(await self.rest.orders(self.contract, address))


async def _spawn(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


WARM_GENESIS = {"usei": 100_000 * SEI, "uusdc": 100_000 * USDC}
ASSETS = {"usei": 2_000 * SEI, "uusdc": 1_000 * USDC}
FEE_USEI = 10 * SEI
TARGET = {"usei": 2_010 * SEI, "uusdc": 1_000 * USDC}


@asynccontextmanager
async def platform(
    tmp: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platform]:
    """Keystore (warm key; the hot path's dev key imported as a hot key), a localnet process
    funding the warm key at genesis, a trading hot path switched onto the keystore key, a
    Temporal dev server."""
    token = secrets.token_urlsafe(24)
    monkeypatch.setenv("FLASHMM_KEYSTORE_SECRET", SECRET)
    monkeypatch.setenv("FLASHMM_CONTROL_TOKEN", token)  # in-process host worker
    ks_dir = tmp / "keystore"
    ks = Keystore(ks_dir, SECRET)
    warm = ks.create("warm", "e2e warm")
    s0 = load_settings()
    trader = Wallet.from_mnemonic(s0.venue.mnemonic("dev", MARKET))
    old = ks.create("hot", "e2e old (imported)", raw=bytes(trader.key.private_key_bytes))
    assert old.address == trader.address
    base_env = {
        **os.environ,
        "FLASHMM_LOCALNET__ACCOUNTS": json.dumps({warm.address: WARM_GENESIS}),
        "FLASHMM_LOCALNET__BLOCK_INTERVAL_S": "0.2",
        "FLASHMM_HOTPATH__KEYSTORE_DIR": str(ks_dir),
        "FLASHMM_HOTPATH__STATE_DIR": str(tmp / "hotpath"),
        "FLASHMM_STORES__ENABLED": "false",
        "FLASHMM_STORES__POSTGRES_DSN": pg_dsn,
        "FLASHMM_LOG_LEVEL": "WARNING",
    }
    node = await _spawn(["-m", "cli", "localnet", "--rest-port", "0", "--rpc-port", "0"], base_env)
    procs = [node]
    tenv = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"), ui=False
    )
    rest: Rest | None = None
    try:
        assert node.stdout is not None
        ready = json.loads(await asyncio.wait_for(node.stdout.readline(), 30))
        env = {
            **base_env,
            "FLASHMM_VENUE__REST_URLS": json.dumps([ready["rest"]]),
            "FLASHMM_VENUE__WS_URLS": json.dumps([ready["rpc"]]),
            "FLASHMM_CONTROL_TOKEN": token,
        }
        hp = await _spawn(["-m", "cli", "hotpath", "--market", MARKET, "--json"], env)
        procs.append(hp)
        assert hp.stdout is not None
        control = json.loads(await asyncio.wait_for(hp.stdout.readline(), 60))
        url = f"http://127.0.0.1:{control['port']}"
        env["FLASHMM_CONTROL__HOTPATHS"] = json.dumps({MARKET: url})
        env["FLASHMM_CONTROL__TEMPORAL_ADDRESS"] = tenv.client.service_client.config.target_host
        s = load_settings(
            stores={"enabled": False, "postgres_dsn": pg_dsn},
            venue={"rest_urls": [ready["rest"]], "ws_urls": [ready["rpc"]]},
            control={"hotpaths": {MARKET: url}},
            hotpath={"keystore_dir": str(ks_dir)},
        )
        rest = Rest(ready["rest"])
        p = Platform(
            s,
            env,
            ks,
            warm.ref,
            warm.address,
            old.ref,
            old.address,
            s.market(MARKET).contract_address(),
            url,
            token,
            rest,
            tenv,
            pg_dsn,
        )
        # production hot paths sign with keystore keys: put this one on the imported key
        # (stopped for the switch, as the workflow does: see RotateKeyInput.pause_quoting)
        await p.command("e2e-setup/stop", "stop", {"reason": "setup"})
        answer = await p.command("e2e-setup/switch", "switch_key", {"key_ref": old.ref})
        assert answer["detail"]["address"] == old.address
        await p.command("e2e-setup/start", "start", {})
        await _until(lambda: _ge(p.orders(old.address), 2), 30, "the hot path quoting")
        yield p
    finally:
        if rest is not None:
            await rest.close()
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        await tenv.shutdown()


async def _ge(coro: Awaitable[int], n: int) -> bool:
    return await coro >= n


def control_worker(client: Client, s: Settings) -> Worker:
    """RotateSigningKey and the activities it runs on the control queue (what
    ``workers.run.control_worker`` registers for it)."""
    venue = VenueActivities(s)
    records = RecordActivities(s)
    return Worker(
        client,
        task_queue=CONTROL_QUEUE,
        workflows=[RotateSigningKey],
        activities=[
            *KeyActivities(s).all(),
            venue.cancel_all,
            venue.open_orders,
            records.audit,
            records.notify,
        ],
    )


def host_worker(client: Client, s: Settings) -> Worker:
    acts = HotpathActivities(s.control.hotpaths, s.hotpath.control_token_env)
    return Worker(client, task_queue=host_queue(MARKET), activities=[acts.command, acts.status])


def _inp(p: Platform) -> RotateKeyInput:
    return RotateKeyInput(
        MARKET, p.warm_ref, FEE_USEI, dict(ASSETS), "e2e rotation", "tester", p.old_ref, 1.0
    )


async def _start(p: Platform) -> WorkflowHandle[Any, RotateKeyResult]:
    h: WorkflowHandle[Any, RotateKeyResult] = await p.temporal.client.start_workflow(
        RotateSigningKey.run,
        _inp(p),
        id=rotation_id(MARKET),
        task_queue=CONTROL_QUEUE,
    )
    return h


async def _audit_rows(dsn: str, outcome: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'rotate_signing_key' "
                "AND outcome = $1",
                outcome,
            )
        )
    finally:
        await conn.close()


async def _after_rotation(p: Platform, res: RotateKeyResult, warm0: dict[str, int]) -> None:
    """What must hold on chain, in the hot path and in the keystore after a rotation."""
    assert res.outcome == "rotated", res
    assert (res.old_key_ref, res.old_address) == (p.old_ref, p.old_address)
    assert res.funded == TARGET and res.funding_fee == FEE
    # the hot path signs with the new key: its quotes rest under the new address
    assert (await p.status())["key_ref"] == res.new_key_ref
    await _until(lambda: _ge(p.orders(res.new_address), 1), 15, "orders of the new key")
    # the old address: no open orders (still none a few blocks later), nothing left
    assert await p.orders(p.old_address) == 0
    await asyncio.sleep(0.6)
    assert await p.orders(p.old_address) == 0
    assert await p.rest.balances(p.old_address) == {"usei": 0, "uusdc": 0}
    # the warm key: one funding transfer out (its only transaction), the sweep back in
    assert await p.rest.sequence(p.warm_address) == 1
    assert await p.rest.balances(p.warm_address) == {
        d: warm0[d] - TARGET[d] - (FEE if d == FEE_DENOM else 0) + res.swept.get(d, 0)
        for d in warm0
    }
    assert res.swept["uusdc"] > 0 and res.swept["usei"] > 0
    assert res.verification["old_balances_left"] == {}
    # the keystore: old retired, new active
    assert p.ks.meta(p.old_ref.partition(":")[2]).status == "retired"
    new_meta = p.ks.meta(res.new_key_ref.partition(":")[2])
    assert (new_meta.status, new_meta.tier, new_meta.address) == ("active", "hot", res.new_address)
    assert await _audit_rows(p.pg, "rotated") == 1


async def test_rotation_end_to_end(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with platform(tmp_path, pg_dsn, monkeypatch) as p:
        warm0 = await p.rest.balances(p.warm_address)
        assert warm0 == WARM_GENESIS  # funded by the localnet's genesis
        client = p.temporal.client
        workers = [control_worker(client, p.settings), host_worker(client, p.settings)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            res = await asyncio.wait_for((await _start(p)).result(), 60)
        finally:
            for w in workers:
                await w.shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
        await _after_rotation(p, res, warm0)


async def test_control_worker_killed_between_funding_and_switching(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control worker (workflow and control activities) is a child process; the host
    worker starts only after the kill, so the run is held right before the switch."""
    async with platform(tmp_path, pg_dsn, monkeypatch) as p:
        warm0 = await p.rest.balances(p.warm_address)
        worker_args = ["-m", "tests.integration.test_rotate_key_e2e"]
        first = await _spawn(worker_args, p.env)
        assert first.stdout is not None
        await asyncio.wait_for(first.stdout.readline(), 60)  # {"event": "worker", ...}
        h = await _start(p)

        async def waiting_to_switch() -> bool:
            phase = (await h.query(RotateSigningKey.progress))["phase"]
            return bool(phase == "asking the hot path")

        await _until(waiting_to_switch, 30, "the run funding the new key")
        new = (await h.query(RotateSigningKey.progress))["new_address"]
        # funded exactly once, before the kill
        assert await p.rest.balances(new) == TARGET
        assert await p.rest.sequence(p.warm_address) == 1
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await _spawn(worker_args, p.env)
        host = host_worker(p.temporal.client, p.settings)
        host_task = asyncio.create_task(host.run())
        try:
            res = await asyncio.wait_for(h.result(), 60)
        finally:
            await host.shutdown()
            await asyncio.gather(host_task, return_exceptions=True)
            second.terminate()
            await second.wait()
        assert res.new_address == new
        await _after_rotation(p, res, warm0)  # the warm key's sequence is still 1


def _control_worker_main() -> None:
    """The crash test's control worker process (settings from the environment)."""
    from flashmm.temporal.client import connect
    from workers.run import run_workers

    async def go() -> None:
        s = load_settings()
        client = await connect(s.control.temporal_address, s.control.namespace)
        w = control_worker(client, s)
        print(json.dumps({"event": "worker", "role": "control"}), flush=True)
        await run_workers([w])

    asyncio.run(go())


if __name__ == "__main__":
    _control_worker_main()
