"""The direction models: a small transformer over the last ``seq_len`` feature vectors, and
the baselines it has to beat (an MLP on the latest vector, a multinomial logistic
regression on order-book imbalance alone, and ``NoChange``: always FLAT, with the training
class frequencies as its probabilities).

Every model takes the z-scored input ``x`` of shape (B, T, 64) (the schema's mean/std,
clipped) and returns logits of shape (B, H, 3) over DOWN/FLAT/UP for each of the H label
horizons. All are ``torch.jit.script``-able; ``Temperature`` wraps any of them so that an
exported model returns calibrated logits.
"""

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from flashmm.ml.schema import FEATURE_NAMES, N_FEATURES

N_CLASSES = 3
IMBALANCE_FEATURES: tuple[str, ...] = ("imb_1", "imb_3", "imb_5")
KINDS: tuple[str, ...] = ("transformer", "mlp", "logistic")


class MarketTransformer(nn.Module):
    """Linear embedding + learned positions -> pre-norm transformer encoder -> last token
    -> one 3-class linear head per horizon (plus an optional ``wide`` linear path)."""

    wide_idx: Tensor

    def __init__(
        self,
        n_features: int = N_FEATURES,
        d_model: int = 128,
        layers: int = 4,
        heads: int = 8,
        ff: int = 256,
        dropout: float = 0.1,
        seq_len: int = 32,
        n_horizons: int = 3,
        wide: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.n_horizons = n_horizons
        self.n_classes = N_CLASSES
        self.inp = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.randn(1, seq_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.heads = nn.ModuleList([nn.Linear(d_model, N_CLASSES) for _ in range(n_horizons)])
        # optional wide path: a linear map of the newest row's ``wide`` features to the logits
        self.register_buffer(
            "wide_idx", torch.tensor([FEATURE_NAMES.index(n) for n in wide] or [0])
        )
        self.wide = nn.Linear(len(self.wide_idx), n_horizons * N_CLASSES)
        self.use_wide = bool(wide)
        if not wide:
            nn.init.zeros_(self.wide.weight)
            nn.init.zeros_(self.wide.bias)
            self.wide.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        t = x.size(1)
        # a shorter history takes the last t positions, so the newest row is always at -1
        h = self.inp(x) + self.pos[:, self.seq_len - t :]
        h = self.encoder(h)
        last = self.norm(h[:, -1])
        out = torch.stack([head(last) for head in self.heads], dim=1)
        if self.use_wide:
            w = self.wide(x[:, -1].index_select(1, self.wide_idx))
            out = out + w.view(-1, self.n_horizons, self.n_classes)
        return out


class MLPBaseline(nn.Module):
    """The latest feature vector (or the named ``inputs`` of it) -> 64 -> 64 -> H x 3 (ReLU);
    with ``wide`` names, plus a linear map of those features straight to the logits (wide and
    deep: e.g. the imbalance logistic regression with a learned correction)."""

    idx: Tensor
    wide_idx: Tensor

    def __init__(
        self,
        n_features: int = N_FEATURES,
        hidden: int = 64,
        n_horizons: int = 3,
        inputs: tuple[str, ...] | None = None,
        wide: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.n_horizons = n_horizons
        self.n_classes = N_CLASSES
        names = FEATURE_NAMES[:n_features]
        idx = [names.index(n) for n in inputs] if inputs else list(range(n_features))
        self.register_buffer("idx", torch.tensor(idx, dtype=torch.long))
        self.net = nn.Sequential(
            nn.Linear(len(idx), hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_horizons * N_CLASSES),
        )
        # "wide and deep": a linear path from the ``wide`` inputs straight to the logits
        self.register_buffer("wide_idx", torch.tensor([names.index(n) for n in wide] or [0]))
        self.wide = nn.Linear(len(self.wide_idx), n_horizons * N_CLASSES)
        self.use_wide = bool(wide)
        if not wide:
            nn.init.zeros_(self.wide.weight)
            nn.init.zeros_(self.wide.bias)
            self.wide.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        last = x[:, -1]
        out: Tensor = self.net(last.index_select(1, self.idx))
        if self.use_wide:
            out = out + self.wide(last.index_select(1, self.wide_idx))
        return out.view(-1, self.n_horizons, self.n_classes)


class ImbalanceLogistic(nn.Module):
    """Multinomial logistic regression per horizon on the imbalance features only, picked by
    name from the schema (the other 61 inputs are never read)."""

    idx: Tensor

    def __init__(
        self,
        feature_names: tuple[str, ...] = FEATURE_NAMES,
        inputs: tuple[str, ...] = IMBALANCE_FEATURES,
        n_horizons: int = 3,
    ) -> None:
        super().__init__()
        self.n_horizons = n_horizons
        self.n_classes = N_CLASSES
        idx = [feature_names.index(name) for name in inputs]
        self.register_buffer("idx", torch.tensor(idx, dtype=torch.long))
        self.linear = nn.Linear(len(idx), n_horizons * N_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.linear(x[:, -1].index_select(1, self.idx))
        return out.view(-1, self.n_horizons, self.n_classes)


class NoChange(nn.Module):
    """The no-change baseline: always FLAT is the likeliest call; its probabilities are the
    training labels' class frequencies per horizon (add-one smoothed), whatever the input."""

    logp: Tensor

    def __init__(self, class_counts: Tensor) -> None:
        super().__init__()
        counts = class_counts.detach().double().view(-1, N_CLASSES) + 1.0
        logp = (counts / counts.sum(dim=1, keepdim=True)).log().float()
        # FLAT must be the argmax: the baseline predicts "no change" by definition
        flat = logp[:, 1].clone()
        logp[:, 1] = torch.maximum(flat, logp.max(dim=1).values + 1e-6)
        self.register_buffer("logp", logp.unsqueeze(0))

    def forward(self, x: Tensor) -> Tensor:
        return self.logp.expand(x.size(0), -1, -1)


def no_change(y: Tensor) -> NoChange:
    """``NoChange`` from training labels (N, H) in 0..2."""
    counts = torch.stack(
        [torch.bincount(y[:, h].long(), minlength=N_CLASSES) for h in range(y.shape[1])]
    )
    return NoChange(counts)


class Temperature(nn.Module):
    """``model(x) / T_h`` per horizon: calibrated logits (argmax unchanged)."""

    t: Tensor

    def __init__(self, model: nn.Module, temperatures: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("t", temperatures.detach().clone().float().view(1, -1, 1))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.model(x)
        return out / self.t


def build(kind: str, n_horizons: int = 3, seq_len: int = 32, **kwargs: Any) -> nn.Module:
    """A fresh model of ``kind`` (one of ``KINDS``); ``kwargs`` go to its constructor."""
    if kind == "transformer":
        return MarketTransformer(seq_len=seq_len, n_horizons=n_horizons, **kwargs)
    if kind == "mlp":
        return MLPBaseline(n_horizons=n_horizons, **kwargs)
    if kind == "logistic":
        return ImbalanceLogistic(n_horizons=n_horizons, **kwargs)
    raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")


@contextlib.contextmanager
def _torchscript() -> Iterator[None]:
    """TorchScript is deprecated upstream, but it is this project's model format."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def script(model: nn.Module) -> torch.jit.ScriptModule:
    """TorchScript of ``model`` in eval mode (portable: not frozen, no backend-specific
    rewrites). Apply ``optimize`` on the machine that runs it."""
    with _torchscript():
        return torch.jit.script(model.eval())


def optimize(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """Freeze and apply the CPU inference rewrites (for this process only; not saved)."""
    with _torchscript():
        return torch.jit.optimize_for_inference(scripted)


def save_script(module: torch.jit.ScriptModule, path: str) -> None:
    with _torchscript():
        torch.jit.save(module, path)


def load_script(path: str, device: str = "cpu") -> torch.jit.ScriptModule:
    """A saved TorchScript module, in eval mode, on ``device``."""
    with _torchscript():
        module: torch.jit.ScriptModule = torch.jit.load(path, map_location=device)  # type: ignore[no-untyped-call]
    module.eval()
    return module
