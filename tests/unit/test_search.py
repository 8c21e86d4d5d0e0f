"""Search settings checked without a database: duplicate keys, samplers, conditions.

(The searches themselves, with real workers, are in tests/integration/test_search.py.)
"""

from __future__ import annotations

import pytest

from runner.config import ConfigError, load_config
from runner.space import param_key
from tests.helpers import CONDITIONAL_SPACE, search_config, small_config


def test_param_key_compares_floats_at_the_declared_precision(tmp_path):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace("[data]", "[data]") + (
        '\n[space.stop_loss]\ntype = "float"\nlow = 0.01\nhigh = 0.1\n'
        '\n[space.ma_type]\ntype = "categorical"\nchoices = ["sma", "ema"]\n'
    ))
    cfg = load_config(path)
    a = param_key(cfg, {"fast": 5, "slow": 30, "stop_loss": 0.0123456, "ma_type": "sma"})
    b = param_key(cfg, {"ma_type": "sma", "slow": 30, "fast": 5, "stop_loss": 0.01234561})
    c = param_key(cfg, {"fast": 5, "slow": 30, "stop_loss": 0.012346, "ma_type": "sma"})
    assert a == b  # same at 6 significant digits, whatever the order
    assert a != c
    assert param_key(cfg, {"fast": 5, "slow": 30, "stop_loss": 0.0123456, "ma_type": "ema"}) != a


def test_a_sampler_whose_package_is_missing_is_a_config_error(tmp_path):
    path = small_config(tmp_path)
    path.write_text(path.read_text().replace("[sampler]\n", '[sampler]\ntype = "gp"\n'))
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"needs the 'torch' package: pip install 'tune-tui\[gp\]'"):
            load_config(path)
    else:
        pytest.skip("torch is installed")


def test_condition_on_an_unknown_parameter_is_a_config_error(tmp_path):
    path = search_config(tmp_path, "conditional", "cx", space=CONDITIONAL_SPACE.replace("mode = \"wide\" }", "mood = \"wide\" }"))
    with pytest.raises(ConfigError, match="names 'mood', which is not another parameter"):
        load_config(path)
