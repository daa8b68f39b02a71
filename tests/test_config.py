import pytest

from shoematch.config import StrictModel, dump_config, flatten, load_config, parse_overrides
from shoematch.errors import ConfigError


class Optim(StrictModel):
    lr: float = 0.1
    steps: int = 10


class Job(StrictModel):
    name: str = "x"
    optim: Optim = Optim()


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: tiny\noptim:\n  lr: 0.5\n")
    config = load_config(Job, str(path), ["optim.steps=3"])
    assert config.name == "tiny" and config.optim.lr == 0.5 and config.optim.steps == 3
    assert flatten(config) == {"name": "tiny", "optim.lr": 0.5, "optim.steps": 3}
    assert "lr: 0.5" in dump_config(config)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  learning_rate: 0.5\n")
    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        load_config(Job, str(path))
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        load_config(Job, None, ["nope=1"])


def test_bad_value_and_missing_file():
    with pytest.raises(ConfigError, match="optim.steps"):
        load_config(Job, None, ["optim.steps=many"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Job, "/nonexistent/c.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["optim.steps"])
