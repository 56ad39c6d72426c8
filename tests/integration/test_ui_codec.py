"""The demo's Temporal UI shows decoded workflow inputs: a headless Chromium (Debian's
package) opens a TradingLifecycle and an EmergencyStop workflow on the dev server the demo
starts, and the page carries the decrypted input text, fetched through the demo's loopback
codec endpoint. History itself stays encrypted."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
import pytest_asyncio

from cli.demo_control import ControlPlane
from flashmm.temporal.client import connect
from flashmm.temporal.codec import ENCODING, new_key_spec
from workflows.starters import start_emergency_stop
from workflows.types import CONTROL_QUEUE, EmergencyStopInput, LifecycleInput, lifecycle_id

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is missing: run scripts/system-deps.sh"
)  # make test installs it (the deps target); a bare pytest on another machine may not


@pytest_asyncio.fixture
async def demo_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ControlPlane]:
    monkeypatch.setenv("FLASHMM_CODEC_KEYS", new_key_spec("ui1"))
    control = ControlPlane(tmp_path)
    await control.start_codec_endpoint()  # as flashmm demo does, before the server
    await control.start_server()
    try:
        yield control
    finally:
        await control.stop()


def _page(control: ControlPlane, workflow_id: str, run_id: str | None) -> str:
    return (
        f"{control.ui}/namespaces/default/workflows/{quote(workflow_id, safe='')}/{run_id}/history"
    )


async def test_the_ui_shows_decoded_inputs_of_lifecycle_and_emergency_stop(
    demo_ui: ControlPlane, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    client = await connect(demo_ui.address)
    reason = "visible-in-the-ui: drill 4711"
    stop = await start_emergency_stop(client, EmergencyStopInput(["SEI/USDC"], reason, "tester"))
    life = await client.start_workflow(
        "TradingLifecycle",
        LifecycleInput("SEI/USDC", reason="lifecycle-input-7"),
        id=lifecycle_id("SEI/USDC"),
        task_queue=CONTROL_QUEUE,
    )
    # what the server stores is ciphertext: the page can only show it through the codec
    async for e in stop.fetch_history_events():
        payload = e.workflow_execution_started_event_attributes.input.payloads[0]
        assert payload.metadata["encoding"] == ENCODING and reason.encode() not in payload.data
        break

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            for handle, text, shot in (
                (stop, reason, "emergency-stop.png"),
                (life, "lifecycle-input-7", "lifecycle.png"),
            ):
                await page.goto(_page(demo_ui, handle.id, handle.result_run_id))
                await page.get_by_text(text).first.wait_for(timeout=30_000)
                await page.screenshot(path=tmp_path / shot, full_page=True)
                assert (tmp_path / shot).stat().st_size > 10_000
        finally:
            await browser.close()
