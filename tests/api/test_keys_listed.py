"""``GET /v1/keys`` lists the signing keys the platform uses: in demo-like settings each
market's mnemonic-derived key (address, market, source), the keystore's keys and the recorded
ones, and never a mnemonic or a private key. Real PostgreSQL and Redis, a real keystore."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.auth.roles import Role
from flashmm.keys.keystore import Keystore
from flashmm.venue.sei.wallet import Wallet, dev_mnemonic
from tests.api.conftest import make_harness, settings_for

SECRET = "keystore-secret-" + "k" * 16


async def test_demo_like_settings_list_each_markets_key_and_no_secret(
    jwt_env: None, pg_dsn: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASHMM_SEI_MNEMONIC", raising=False)
    ks_dir = tmp_path / "keystore"
    ks = Keystore(ks_dir, SECRET)
    rotated = ks.create("hot", "rotation SEI/USDC 0f1e2d")
    warm = ks.create("warm", "funding")
    h = await make_harness(
        settings_for(pg_dsn, redis_url, tmp_path, hotpath={"keystore_dir": str(ks_dir)})
    )
    try:
        await h.ctx.pool.execute(
            "INSERT INTO key_metadata (key_id, tier, address, status) VALUES "
            "($1, 'hot', $2, 'active'), ('hot-elsewhere', 'hot', 'sei1elsewhere', 'retired')",
            rotated.key_id,
            rotated.address,
        )
        r = await h.http.get("/v1/keys", headers=h.auth(Role.OPERATOR))
        assert r.status_code == 200, r.text
        keys = r.json()
        settings = h.ctx.settings
        mnemonics = {
            m.symbol: dev_mnemonic(settings.venue.account_name(m.symbol)) for m in settings.markets
        }
        from_settings = [k for k in keys if k["source"] == "settings mnemonic"]
        assert {k["market"] for k in from_settings} == set(mnemonics)  # one per market
        for k in from_settings:
            assert k["address"] == Wallet.from_mnemonic(mnemonics[k["market"]]).address
            assert "development key" in k["detail"]
        assert len({k["address"] for k in from_settings}) == len(mnemonics)
        by_id = {k["key_id"]: k for k in keys}
        assert by_id[rotated.key_id]["source"] == "keystore"
        assert by_id[rotated.key_id]["market"] == "SEI/USDC"
        assert by_id[rotated.key_id]["recorded"] is True  # in key_metadata too, listed once
        assert by_id[warm.key_id]["tier"] == "warm" and by_id[warm.key_id]["market"] is None
        assert by_id["hot-elsewhere"]["source"] == "key_metadata"
        assert len(keys) == len(mnemonics) + 3
        # nothing secret: no mnemonic (nor any of its words in a row), no key material
        text = r.text
        for words in mnemonics.values():
            assert words not in text and " ".join(words.split()[:3]) not in text
        doc = (ks_dir / f"{rotated.key_id}.json").read_text()
        assert '"cipher"' in doc and "cipher" not in text and "salt" not in text
        for k in keys:
            assert not {"mnemonic", "private_key", "secret"} & set(k)

        # a mnemonic from the environment: named by its variable, never shown
        real = dev_mnemonic("someone-else")
        monkeypatch.setenv("FLASHMM_SEI_MNEMONIC", real)
        r = await h.http.get("/v1/keys", headers=h.auth(Role.OPERATOR))
        keys = [k for k in r.json() if k["source"] == "settings mnemonic"]
        assert {k["address"] for k in keys} == {Wallet.from_mnemonic(real).address}
        assert all("$FLASHMM_SEI_MNEMONIC" in k["detail"] for k in keys)
        assert real not in r.text and real.split()[0] + " " + real.split()[1] not in r.text

        # viewers and traders may not list keys (the route's permission is unchanged)
        r = await h.http.get("/v1/keys", headers=h.auth(Role.TRADER))
        assert r.status_code == 403
    finally:
        await h.http.aclose()
        await h.ctx.close()
