"""The real-data model variants: an MLP reading only named inputs, the wide (linear) path of
the MLP and the transformer, and the no-change module, all TorchScript-exact."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from flashmm.ml.models import build, no_change, script
from flashmm.ml.realdata import IMBALANCE_WIDE, TICK_FREE
from flashmm.ml.schema import FEATURE_NAMES


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("mlp", {"inputs": TICK_FREE, "wide": IMBALANCE_WIDE}),
        ("transformer", {"d_model": 16, "layers": 1, "heads": 2, "ff": 16, "wide": ("imb_1",)}),
    ],
)
def test_variants_script_exactly(kind: str, kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    m = build(kind, seq_len=8, **kwargs).eval()
    x = torch.randn(5, 8, 64)
    with torch.no_grad():
        assert torch.equal(script(m)(x), m(x))


def test_mlp_reads_only_its_inputs_and_wide_features() -> None:
    torch.manual_seed(0)
    m = build("mlp", inputs=TICK_FREE, wide=IMBALANCE_WIDE).eval()
    x = torch.randn(4, 1, 64)
    y = x.clone()
    unread = [i for i, n in enumerate(FEATURE_NAMES) if n not in TICK_FREE]
    assert FEATURE_NAMES.index("depth_total") in unread and "imb_1" in TICK_FREE
    y[:, :, unread] = 100.0  # lots, ticks-as-bps: never read
    with torch.no_grad():
        assert torch.equal(m(x), m(y))
        y[:, :, FEATURE_NAMES.index("imb_1")] += 1.0
        assert not torch.equal(m(x), m(y))


def test_no_change_is_constant_and_scripts() -> None:
    y = torch.tensor([[1, 1], [1, 0], [2, 1], [1, 1]])
    m = no_change(y)
    x = torch.randn(3, 2, 64)
    out = script(m)(x)
    assert out.shape == (3, 2, 3) and torch.equal(out[0], out[2])
    assert torch.all(out.argmax(-1) == 1)
    p = torch.softmax(out[0, 0], -1)  # counts (0, 3, 1) + 1 each
    assert torch.allclose(p, torch.tensor([1 / 7, 4 / 7, 2 / 7]))
