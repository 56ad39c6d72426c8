"""The localnet process: a Cosmos REST API and a Tendermint RPC WebSocket on loopback, and
a block every ``block_interval_s``.

REST (``rest_port``): ``POST /cosmos/tx/v1beta1/txs``, ``GET /cosmos/auth/v1beta1/accounts/
{address}``, ``GET /cosmos/bank/v1beta1/balances/{address}``, ``GET /cosmos/tx/v1beta1/txs/
{hash}``, ``GET /sei-protocol/seichain/dex/get_orders/{contract}/{account}``, and for
operators ``GET /flashmm/localnet/v1/markets`` and ``.../book/{contract}``.
RPC (``rpc_port``): ``GET /websocket`` (JSON-RPC subscribe), ``GET /status``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from typing import Any

from aiohttp import web

from flashmm.localnet.chain import Chain
from flashmm.localnet.config import LocalnetConfig
from flashmm.localnet.errors import TxError
from flashmm.localnet.rpc import RpcHub, block_messages, tx_data

log = logging.getLogger("flashmm.localnet")
MAX_BODY = 1024 * 1024


class Localnet:
    """Chain + servers + block timer. ``start()`` binds; ``rest_port``/``rpc_port`` then hold
    the real ports (pass 0 to let the OS choose)."""

    def __init__(
        self,
        cfg: LocalnetConfig,
        host: str = "127.0.0.1",
        rest_port: int = 1317,
        rpc_port: int = 26657,
    ) -> None:
        self.cfg = cfg
        self.chain = Chain(cfg)
        self.host = host
        self.rest_port = rest_port
        self.rpc_port = rpc_port
        self.hub = RpcHub()
        self._runners: list[web.AppRunner] = []
        self._blocks: asyncio.Task[None] | None = None
        self._t0 = 0.0
        self._sim0 = 0.0
        self.rejected = 0

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        rest = web.Application(client_max_size=MAX_BODY)
        rest.add_routes(
            [
                web.post("/cosmos/tx/v1beta1/txs", self.broadcast),
                web.get("/cosmos/auth/v1beta1/accounts/{address}", self.account),
                web.get("/cosmos/bank/v1beta1/balances/{address}", self.balances),
                web.get("/cosmos/tx/v1beta1/txs/{hash}", self.get_tx),
                web.get("/sei-protocol/seichain/dex/get_orders/{contract}/{account}", self.orders),
                web.get("/flashmm/localnet/v1/markets", self.markets),
                web.get("/flashmm/localnet/v1/book/{contract}", self.book),
                web.get("/cosmos/base/tendermint/v1beta1/blocks/latest", self.latest),
            ]
        )
        rpc = web.Application()
        rpc.add_routes([web.get("/websocket", self.hub.handle), web.get("/status", self.status)])
        for app, attr in ((rest, "rest_port"), (rpc, "rpc_port")):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, getattr(self, attr))
            await site.start()
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            setattr(self, attr, sock.getsockname()[1])
            self._runners.append(runner)
        self._t0 = time.monotonic()
        self._sim0 = (
            max(m.sim.time for m in self.chain.markets.values()) if self.chain.markets else 0.0
        )
        self._blocks = asyncio.create_task(self._block_loop(), name="localnet-blocks")
        log.info(
            "localnet %s: REST http://%s:%d  RPC ws://%s:%d/websocket",
            self.cfg.chain_id,
            self.host,
            self.rest_port,
            self.host,
            self.rpc_port,
        )

    async def stop(self) -> None:
        if self._blocks is not None:
            self._blocks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._blocks
        for sub in list(self.hub.subscribers):
            await sub.ws.close()
        for r in self._runners:
            await r.cleanup()
        self._runners.clear()

    async def _block_loop(self) -> None:
        interval = self.cfg.block_interval_s
        next_at = time.monotonic()
        while True:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            block = self.chain.produce_block(self._sim0 + time.monotonic() - self._t0)
            self.hub.publish(block_messages(self.cfg.chain_id, block, time.time()))

    # --- REST ---------------------------------------------------------------------------
    async def broadcast(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            tx_bytes = base64.b64decode(body["tx_bytes"], validate=True)
            mode = body.get("mode", "BROADCAST_MODE_SYNC")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _err(400, 3, 'invalid request: expected {"tx_bytes": base64, "mode": ...}')
        if mode not in ("BROADCAST_MODE_SYNC", "BROADCAST_MODE_ASYNC"):
            return _err(400, 3, f"unsupported broadcast mode {mode!r}")
        try:
            h = self.chain.check_tx(tx_bytes)
        except TxError as e:
            self.rejected += 1
            log.info("rejected tx: %s", e)
            from flashmm.venue.sei.tx import tx_hash

            return web.json_response(
                {"tx_response": _tx_response(tx_hash(tx_bytes), e.code, e.log, e.codespace)}
            )
        return web.json_response({"tx_response": _tx_response(h, 0, "[]", "")})

    async def account(self, request: web.Request) -> web.Response:
        a = self.chain.accounts.get(request.match_info["address"])
        if a is None:
            return _err(404, 5, f"account {request.match_info['address']} not found")
        return web.json_response({"account": a.as_json()})

    async def balances(self, request: web.Request) -> web.Response:
        a = self.chain.accounts.get(request.match_info["address"])
        bal = sorted((a.balances if a else {}).items())
        return web.json_response(
            {
                "balances": [{"denom": d, "amount": str(v)} for d, v in bal],
                "pagination": {"next_key": None, "total": str(len(bal))},
            }
        )

    async def get_tx(self, request: web.Request) -> web.Response:
        r = self.chain.results.get(request.match_info["hash"].upper())
        if r is None:
            return _err(404, 5, "tx not found")
        return web.json_response(
            {
                "tx_response": {
                    **_tx_response(r.txhash, r.code, r.log, ""),
                    "height": str(r.height),
                    "events": r.events,
                },
                "tx": tx_data(r)["value"],
            }
        )

    async def orders(self, request: web.Request) -> web.Response:
        contract = request.match_info["contract"]
        if contract not in self.chain.markets:
            return _err(404, 5, f"unknown contract {contract}")
        return web.json_response(
            {"orders": self.chain.open_orders(contract, request.match_info["account"])}
        )

    async def markets(self, request: web.Request) -> web.Response:
        out = []
        for c, m in self.chain.markets.items():
            i = m.inst
            out.append(
                {
                    "contract": c,
                    "symbol": i.symbol,
                    "price_denom": m.spec.price_denom,
                    "asset_denom": m.spec.asset_denom,
                    "tick_size": str(i.tick_size),
                    "lot_size": str(i.lot_size),
                    "maker_fee_bps": str(i.maker_fee_bps),
                    "taker_fee_bps": str(i.taker_fee_bps),
                }
            )
        return web.json_response({"markets": out})

    async def book(self, request: web.Request) -> web.Response:
        m = self.chain.markets.get(request.match_info["contract"])
        if m is None:
            return _err(404, 5, f"unknown contract {request.match_info['contract']}")
        return web.json_response({**m.snapshot(), "height": str(self.chain.height)})

    async def latest(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"block": {"header": {"chain_id": self.cfg.chain_id, "height": str(self.chain.height)}}}
        )

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "jsonrpc": "2.0",
                "id": -1,
                "result": {
                    "node_info": {"network": self.cfg.chain_id},
                    "sync_info": {
                        "latest_block_height": str(self.chain.height),
                        "catching_up": False,
                    },
                },
            }
        )


def _tx_response(h: str, code: int, log_text: str, codespace: str) -> dict[str, Any]:
    return {
        "height": "0",
        "txhash": h,
        "codespace": codespace,
        "code": code,
        "data": "",
        "raw_log": log_text,
        "logs": [],
        "info": "",
        "gas_wanted": "0",
        "gas_used": "0",
    }


def _err(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "details": []}, status=status)
