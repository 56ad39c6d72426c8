"""Settings: defaults, FLASHMM_* env overrides, YAML files, precedence and clear errors."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from flashmm.config import ConfigError, Settings, load_settings
from flashmm.config.quoting import Mode, QuoteModel, QuoteParams
from flashmm.config.risk import RiskLimits
from flashmm.sim.params import MarketParams, VenueParams

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FLASHMM_* variable from the outside; FLASHMM_CONFIG restored after each test."""
    for key in list(os.environ):
        if key.upper().startswith("FLASHMM_"):
            monkeypatch.delenv(key)
    # load_settings(path) writes os.environ["FLASHMM_CONFIG"]; delenv records it as unset so
    # monkeypatch removes it again at teardown
    monkeypatch.delenv("FLASHMM_CONFIG", raising=False)


def _yaml(tmp_path: Path, text: str, name: str = "flashmm.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as ei:
        load_settings(_yaml(tmp_path, text))
    return str(ei.value)


# --- defaults ---------------------------------------------------------------------------


def test_defaults_load() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    assert s.environment == "dev"
    assert s.log_level == "INFO"
    assert [m.symbol for m in s.markets] == ["SEI/USDC", "ATOM/USDC"]
    m = s.markets[0]
    assert m.tick_size == Decimal("0.0001")
    assert m.start_price == Decimal("0.5")
    inst = m.instrument()
    assert (inst.base, inst.quote) == ("SEI", "USDC")
    assert inst.maker_fee_bps == Decimal("-0.5")
    assert s.hotpath.quote_hz == 5.0
    assert s.hotpath.status_interval_s == 1.0
    assert s.quote_params() == QuoteParams()
    assert s.risk_limits() == RiskLimits()
    assert s.sim.market_params() == MarketParams()
    assert s.sim.venue_params() == VenueParams()
    assert "FLASHMM_CONFIG" not in os.environ


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(Exception, match="frozen"):
        s.environment = "prod"  # type: ignore[misc]


def test_market_params_seed_and_extra_override() -> None:
    s = load_settings()
    p = s.sim.market_params(seed=11, start_price=1234)
    assert p.seed == 11
    assert p.start_price == 1234
    assert p.informed_rate == MarketParams().informed_rate


# --- environment ------------------------------------------------------------------------


def test_env_override_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_HOTPATH__QUOTE_HZ", "10")
    monkeypatch.setenv("FLASHMM_HOTPATH__RISK__MAX_POSITION_NOTIONAL", "1500")
    s = load_settings()
    assert s.hotpath.quote_hz == 10.0
    limits = s.risk_limits()
    assert limits.max_position_notional == 1500.0
    assert isinstance(limits.max_position_notional, float)
    # untouched siblings keep their defaults
    assert limits.max_order_notional == RiskLimits().max_order_notional
    assert s.hotpath.status_interval_s == 1.0


def test_env_override_top_level_and_enum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_ENVIRONMENT", "staging")
    monkeypatch.setenv("FLASHMM_HOTPATH__QUOTING__MODEL", "as")
    s = load_settings()
    assert s.environment == "staging"
    assert s.quote_params().model is QuoteModel.AS


def test_env_invalid_quote_hz_names_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_HOTPATH__QUOTE_HZ", "0")
    with pytest.raises(ConfigError, match=r"hotpath\.quote_hz"):
        load_settings()


def test_init_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_ENVIRONMENT", "staging")
    assert load_settings(environment="prod").environment == "prod"


# --- YAML -------------------------------------------------------------------------------

YAML_TEXT = """\
environment: test
log_level: DEBUG
markets:
  - symbol: ATOM/USDC
    tick_size: "0.001"
    lot_size: "0.1"
    start_price: "8.0"
hotpath:
  quote_hz: 7
  status_interval_s: 3
  quoting:
    model: as
    mode: conservative
    gamma: 0.25
    levels: 3
  risk:
    max_position_notional: 900
    max_order_notional: 250
sim:
  market:
    seed: 42
    informed_rate: 1.5
  venue:
    order_latency_s: 0.01
"""


def test_yaml_file_values(tmp_path: Path) -> None:
    path = _yaml(tmp_path, YAML_TEXT)
    s = load_settings(path)
    assert os.environ["FLASHMM_CONFIG"] == str(path)
    assert s.environment == "test"
    assert s.log_level == "DEBUG"
    assert [m.symbol for m in s.markets] == ["ATOM/USDC"]
    inst = s.markets[0].instrument()
    assert inst.tick_size == Decimal("0.001")
    assert inst.lot_size == Decimal("0.1")
    assert inst.price_to_ticks(s.markets[0].start_price) == 8000
    assert s.hotpath.quote_hz == 7.0
    assert s.hotpath.status_interval_s == 3.0
    q = s.quote_params()
    assert q.model is QuoteModel.AS
    assert q.mode is Mode.CONSERVATIVE
    assert q.gamma == 0.25
    assert q.levels == 3
    r = s.risk_limits()
    assert r.max_position_notional == 900.0
    assert r.max_order_notional == 250.0
    assert r.max_open_notional == RiskLimits().max_open_notional
    mp = s.sim.market_params()
    assert mp.seed == 42
    assert mp.informed_rate == 1.5
    assert s.sim.venue_params().order_latency_s == 0.01


def test_yaml_via_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_CONFIG", str(_yaml(tmp_path, "hotpath:\n  quote_hz: 9\n")))
    assert load_settings().hotpath.quote_hz == 9.0


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    s = load_settings(_yaml(tmp_path, "# nothing here\n"))
    assert s.hotpath.quote_hz == 5.0
    assert [m.symbol for m in s.markets] == ["SEI/USDC", "ATOM/USDC"]


def test_env_beats_yaml_and_merges_nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHMM_HOTPATH__QUOTE_HZ", "12")
    monkeypatch.setenv("FLASHMM_HOTPATH__RISK__MAX_POSITION_NOTIONAL", "1500")
    s = load_settings(_yaml(tmp_path, YAML_TEXT))
    assert s.hotpath.quote_hz == 12.0  # env
    assert s.risk_limits().max_position_notional == 1500.0  # env
    # values only in the file survive the nested env override
    assert s.hotpath.status_interval_s == 3.0
    assert s.risk_limits().max_order_notional == 250.0
    assert s.quote_params().model is QuoteModel.AS
    assert s.environment == "test"


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("hz", ["0", "-1"])
def test_quote_hz_not_positive(tmp_path: Path, hz: str) -> None:
    msg = _error(tmp_path, f"hotpath:\n  quote_hz: {hz}\n")
    assert "hotpath.quote_hz" in msg
    assert "greater than 0" in msg


def test_quote_hz_too_high(tmp_path: Path) -> None:
    assert "hotpath.quote_hz" in _error(tmp_path, "hotpath:\n  quote_hz: 1000\n")


def test_negative_risk_limit(tmp_path: Path) -> None:
    msg = _error(tmp_path, "hotpath:\n  risk:\n    max_position_notional: -5\n")
    assert "invalid setting hotpath.risk.max_position_notional:" in msg
    assert "positive" in msg


def test_unknown_quoting_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, "hotpath:\n  quoting:\n    gammma: 0.1\n")
    assert "hotpath.quoting.gammma" in msg
    assert "unknown" in msg
    assert "gamma" in msg.split("known:")[1]  # lists the valid keys


def test_bad_enum_value(tmp_path: Path) -> None:
    msg = _error(tmp_path, "hotpath:\n  quoting:\n    model: black_scholes\n")
    assert "invalid setting hotpath.quoting.model:" in msg
    assert "black_scholes" in msg


@pytest.mark.parametrize(
    ("text", "dotted"),
    [
        ("hotpath:\n  quoting:\n    gamma: -1\n", "hotpath.quoting.gamma"),
        ("hotpath:\n  quoting:\n    gamma: abc\n", "hotpath.quoting.gamma"),
        ("hotpath:\n  quoting:\n    levels: 11\n", "hotpath.quoting.levels"),
        ("hotpath:\n  quoting:\n    mode: reckless\n", "hotpath.quoting.mode"),
        ("hotpath:\n  risk:\n    stale_after_s: 0\n", "hotpath.risk.stale_after_s"),
        ("hotpath:\n  risk:\n    max_actions_per_s: -3\n", "hotpath.risk.max_actions_per_s"),
        ("hotpath:\n  risk:\n    max_risk: 3\n", "hotpath.risk.max_risk"),
        ("sim:\n  market:\n    informed_rate: -1\n", "sim.market.informed_rate"),
        ("sim:\n  market:\n    colour: blue\n", "sim.market.colour"),
    ],
)
def test_nested_errors_name_full_dotted_path(tmp_path: Path, text: str, dotted: str) -> None:
    msg = _error(tmp_path, text)
    assert f"invalid setting {dotted}:" in msg, msg


def test_bad_environment_enum(tmp_path: Path) -> None:
    assert "invalid setting environment" in _error(tmp_path, "environment: moon\n")


def test_bad_symbol(tmp_path: Path) -> None:
    msg = _error(tmp_path, "markets:\n  - symbol: SEIUSDC\n")
    assert "markets.0.symbol" in msg
    assert "SEIUSDC" in msg


def test_bad_symbol_in_second_market(tmp_path: Path) -> None:
    msg = _error(tmp_path, "markets:\n  - symbol: SEI/USDC\n  - symbol: /USDC\n")
    assert "markets.1.symbol" in msg


def test_non_positive_tick_size(tmp_path: Path) -> None:
    msg = _error(tmp_path, 'markets:\n  - symbol: SEI/USDC\n    tick_size: "0"\n')
    assert "markets.0.tick_size" in msg


def test_duplicate_symbols(tmp_path: Path) -> None:
    msg = _error(tmp_path, "markets:\n  - symbol: SEI/USDC\n  - symbol: SEI/USDC\n")
    assert "invalid setting markets:" in msg
    assert "duplicate" in msg


def test_no_markets(tmp_path: Path) -> None:
    msg = _error(tmp_path, "markets: []\n")
    assert "invalid setting markets:" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = _error(tmp_path, "hotpaht:\n  quote_hz: 5\n")
    assert "invalid setting hotpaht" in msg


def test_unknown_hotpath_key(tmp_path: Path) -> None:
    assert "hotpath.quote_hertz" in _error(tmp_path, "hotpath:\n  quote_hertz: 5\n")


def test_several_errors_each_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, "environment: moon\nhotpath:\n  quote_hz: 0\n")
    lines = msg.splitlines()
    assert any("environment" in ln for ln in lines)
    assert any("hotpath.quote_hz" in ln for ln in lines)


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as ei:
        load_settings(missing)
    assert str(missing) in str(ei.value)


def test_yaml_not_a_mapping(tmp_path: Path) -> None:
    msg = _error(tmp_path, "- a\n- b\n")
    assert "mapping" in msg


def test_yaml_scalar_not_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in _error(tmp_path, "just a string\n")


def test_invalid_yaml_syntax(tmp_path: Path) -> None:
    assert "not valid YAML" in _error(tmp_path, "hotpath: [unclosed\n")


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- the example file -------------------------------------------------------------------


def test_example_config_loads_with_two_markets() -> None:
    s = load_settings(EXAMPLE)
    assert [m.symbol for m in s.markets] == ["SEI/USDC", "ATOM/USDC"]
    atom = s.markets[1].instrument()
    assert atom.lot_size == Decimal("0.1")
    assert atom.tick_size == Decimal("0.001")
    assert s.hotpath.quote_hz == 5.0
    assert s.quote_params().model is QuoteModel.GLFT
    assert s.risk_limits().max_position_notional == 2000.0
    assert s.sim.market_params().seed == 7
    assert s.sim.venue_params().report_latency_s == 0.001
