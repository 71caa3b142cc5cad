import json

import pytest

from cmmkit.config import build_config, dump, parse_set, validate
from cmmkit.errors import ConfigError


def test_set_overrides_are_merged_and_typed(synthetic_pair):
    cfg = build_config("synthetic", sets=["train.optimizer.lr=0.5", "model.posterior=x", "train.epochs=3",
                                          "pair.x.learn_variance=false"])
    assert cfg.train.optimizer.lr == 0.5 and cfg.train.epochs == 3
    assert cfg.model.posterior == "x" and cfg.pair.x.learn_variance is False
    assert cfg.model.latent_dim == 4  # from the pair's default preset


def test_dump_round_trips(synthetic_pair):
    cfg = build_config("synthetic", sets=["train.seed=7"])
    again = validate(json.loads(json.dumps(dump(cfg))))
    assert dump(again) == dump(cfg)


@pytest.mark.parametrize("sets, expected", [
    (["train.epoch=3"], "train.epoch: unknown key. Did you mean 'epochs'?"),
    (["pair.x.base_channel=8"], "pair.x.base_channel: unknown key. Did you mean 'base_channels'?"),
    (["model.latent_dims=8"], "model.latent_dims: unknown key. Did you mean 'latent_dim'?"),
    (["train.batch_size=many"], "train.batch_size: Input should be a valid integer"),
    (["train.optimizer.lr=-1"], "train.optimizer.lr: Input should be greater than 0"),
    (["model.posterior=z"], "model.posterior: Input should be 'xy' or 'x'"),
    (["trian.epochs=1"], "trian: unknown section. Did you mean 'train'?"),
    (["model.name=cmmma"], "unknown model 'cmmma'. Did you mean 'cmma'?"),
    (["noequals"], "expected KEY.SUB=VALUE"),
])
def test_bad_config_names_the_field_and_what_was_expected(synthetic_pair, sets, expected):
    with pytest.raises(Exception) as info:
        build_config("synthetic", sets=sets)
    assert expected in str(info.value)


def test_config_file_yaml_and_json(tmp_path, synthetic_pair):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 4\nmodel:\n  latent_dim: 3\n")
    (tmp_path / "c.json").write_text(json.dumps({"train": {"epochs": 5}}))
    assert build_config("synthetic", file=tmp_path / "c.yaml").model.latent_dim == 3
    assert build_config("synthetic", file=tmp_path / "c.json").train.epochs == 5
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        build_config("synthetic", file=tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_config("synthetic", file=tmp_path / "missing.yaml")


def test_unknown_preset_lists_the_available_ones(synthetic_pair):
    with pytest.raises(ConfigError, match="unknown preset 'papr'.*Available: default"):
        build_config("synthetic", preset="papr")


def test_parse_set_nests():
    assert parse_set(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


def test_model_choice_picks_that_models_preset_section(synthetic_pair):
    assert build_config("synthetic", model="cvae").model.decoder_y_hidden == 8
    assert build_config("synthetic", sets=["model.name=vae"]).model.name == "vae"
    with pytest.raises(ConfigError, match="model.prior_hidden: unknown key"):
        build_config("synthetic", model="cvae", sets=["model.prior_hidden=3"])
