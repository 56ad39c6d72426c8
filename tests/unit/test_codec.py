"""Payload encryption: round trips, key rotation, tampering, and the UI codec endpoint."""

from __future__ import annotations

import base64
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from flashmm.temporal.codec import (
    CodecKeyError,
    EncryptionCodec,
    UnencryptedPayloadError,
    new_key_spec,
    parse_keys,
)
from flashmm.temporal.codec_server import make_app

SECRET = "sei1secretvalue-never-in-history"


async def test_round_trip_and_no_plaintext_in_the_encoded_bytes() -> None:
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    conv = DataConverter(payload_codec=codec)
    encoded = await conv.encode([{"mnemonic": SECRET}])
    assert SECRET.encode() not in encoded[0].SerializeToString()
    assert encoded[0].metadata["encryption-key-id"] == b"k1"
    assert await conv.decode(encoded, [dict]) == [{"mnemonic": SECRET}]


async def test_rotation_old_history_still_decrypts_with_the_old_key() -> None:
    old_spec = new_key_spec("k1")
    old = EncryptionCodec(parse_keys(old_spec))
    written = await old.encode([Payload(data=b"hello")])
    rotated = EncryptionCodec(parse_keys(new_key_spec("k2") + "," + old_spec))
    assert (await rotated.decode(written))[0].data == b"hello"
    assert (await rotated.encode([Payload(data=b"x")]))[0].metadata["encryption-key-id"] == b"k2"
    without_old = EncryptionCodec(parse_keys(new_key_spec("k2")))
    with pytest.raises(CodecKeyError, match="no codec key 'k1'"):
        await without_old.decode(written)


async def test_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    p = (await codec.encode([Payload(data=b"amount=5")]))[0]
    p.data = p.data[:-1] + bytes([p.data[-1] ^ 1])
    with pytest.raises(CodecKeyError, match="failed authentication"):
        await codec.decode([p])


@pytest.mark.parametrize(
    "spec", ["", "k1", "k1:notbase64!", "k1:" + base64.b64encode(b"short").decode()]
)
def test_bad_key_specs_are_refused_without_echoing_keys(spec: str) -> None:
    with pytest.raises(CodecKeyError) as e:
        parse_keys(spec)
    assert "short" not in str(e.value) or spec == ""


async def test_ui_codec_endpoint_decodes_for_authorised_operators_only() -> None:
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    enc = (
        await codec.encode(
            [Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"x": 1}).encode())]
        )
    )[0]
    body = json.dumps(
        {
            "payloads": [
                {
                    "metadata": {k: base64.b64encode(v).decode() for k, v in enc.metadata.items()},
                    "data": base64.b64encode(enc.data).decode(),
                }
            ]
        }
    )
    origin = "http://127.0.0.1:8233"
    app = make_app(codec, "t" * 20, origin)
    async with TestClient(TestServer(app)) as client:
        r = await client.post("/decode", data=body)
        assert r.status == 401
        r = await client.post(
            "/decode", data=body, headers={"Authorization": "Bearer " + "t" * 20, "Origin": origin}
        )
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == origin
        out = (await r.json())["payloads"][0]
        assert json.loads(base64.b64decode(out["data"])) == {"x": 1}
        r = await client.post(
            "/decode", data="{nope", headers={"Authorization": "Bearer " + "t" * 20}
        )
        assert r.status == 400
        r = await client.options("/decode", headers={"Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_a_strict_codec_refuses_plain_payloads_and_says_why() -> None:
    spec = parse_keys(new_key_spec("k1"))
    plain = await DataConverter.default.encode([{"reason": "sent without the key"}])
    lenient = EncryptionCodec(spec)
    assert (await lenient.decode(plain))[0].data == plain[0].data  # clients read old history
    strict = EncryptionCodec(spec, strict=True)
    with pytest.raises(UnencryptedPayloadError, match="no codec key"):
        await strict.decode(plain)
    ours = await strict.encode(plain)
    assert (await strict.decode(ours))[0].data == plain[0].data


async def test_the_demos_endpoint_answers_loopback_callers_without_a_token() -> None:
    codec = EncryptionCodec(parse_keys(new_key_spec("k1")))
    encoded = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"hi"')])
    body = json.dumps({"payloads": [json.loads(_to_json(p)) for p in encoded]})
    client = TestClient(TestServer(make_app(codec, None, "http://127.0.0.1:8233")))
    await client.start_server()
    try:
        r = await client.post("/decode", data=body, headers={"Origin": "http://127.0.0.1:8233"})
        assert r.status == 200
        out = await r.json()
        assert base64.b64decode(out["payloads"][0]["data"]) == b'"hi"'
        assert r.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8233"
    finally:
        await client.close()


def _to_json(p: Payload) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(p)
