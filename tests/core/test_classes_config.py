import numpy as np
import pytest
from conftest import PROJECT

from hpa_scc.core.classes import CLASSES, NEGATIVE, NUM_CLASSES, format_label, from_multi_hot, parse_label, to_multi_hot
from hpa_scc.core.config import Config, config_to_dict, load_config
from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import ConfigError, InputError


def test_class_table():
    assert NUM_CLASSES == 19 and NEGATIVE == 18
    assert [c.index for c in CLASSES] == list(range(19))
    assert CLASSES[0].name == "Nucleoplasm" and CLASSES[18].name == "Negative"
    assert len({c.key for c in CLASSES}) == 19


def test_label_round_trip():
    assert parse_label("8|5|0") == (0, 5, 8)
    assert format_label([8, 5, 0, 5]) == "0|5|8"
    vec = to_multi_hot(parse_label("18"))
    assert vec.dtype == np.float32 and vec.shape == (19,) and vec[18] == 1 and vec.sum() == 1
    assert from_multi_hot(to_multi_hot([1, 16])) == (1, 16)


@pytest.mark.parametrize("bad", ["", "19", "-1", "a|2", "1||2"])
def test_bad_labels(bad):
    with pytest.raises(InputError):
        parse_label(bad)


@pytest.mark.parametrize("name", ["demo.yaml", "default.yaml", "cpu.yaml"])
def test_project_configs_load(name):
    cfg = load_config(PROJECT / "configs" / name)
    assert isinstance(cfg, Config)
    assert cfg.segment.backend == SegmentConfig().backend == "unet"  # the shipped default, in every recipe


def test_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\nsynth:\n  sizes: [128, 256]\n")
    cfg = load_config(path, ["train.batch_size=8", "predict.cell_weight=0.5"])
    assert cfg.train.epochs == 2 and cfg.train.batch_size == 8
    assert cfg.synth.sizes == (128, 256)
    assert cfg.predict.cell_weight == 0.5
    with pytest.raises(Exception):
        cfg.train.epochs = 3  # frozen
    assert config_to_dict(cfg)["synth"]["sizes"] == [128, 256]


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  epoch: 2\n", "train.epoch"),
        ("trian:\n  epochs: 2\n", "trian"),
        ("train:\n  augment:\n    rotaton: 3\n", "train.augment.rotaton"),
    ],
)
def test_unknown_keys_are_named(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize("override", ["train.epochs=two", "train.mode=weird", "model.channels=5", "train.augment.flip=3",
                                      "train.members=0"])
def test_bad_values_rejected(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("mode", ["image", "cells", "truth", "mil", "oof"])
def test_bench_quality_builds_a_valid_recipe_for_every_method(mode):
    from hpa_scc.bench.quality import QualitySettings, bench_train_config

    cfg = bench_train_config(load_config(PROJECT / "configs" / "cpu.yaml"), QualitySettings(), mode)
    if mode == "oof":
        assert (cfg.train.mode, cfg.train.pseudo_rounds >= 1, cfg.train.pseudo_folds >= 2) == ("cells", True, True)
    else:
        assert (cfg.train.mode, cfg.train.pseudo_rounds) == (mode, 0)
    assert cfg.model.size == (128 if mode == "image" else 96)


def test_shipped_configs_are_found_by_name_from_anywhere(tmp_path, monkeypatch):
    from hpa_scc.core.config import load_config, packaged_configs

    monkeypatch.chdir(tmp_path)  # no configs/ folder here: an installed package, a Kaggle kernel
    assert {p.name for p in packaged_configs().glob("*.yaml")} >= {"default.yaml", "cpu.yaml", "demo.yaml"}
    default = load_config("default.yaml")
    assert default.model.size == 224 and default.train.mode == "mil"
    assert load_config("configs/cpu.yaml").model.size == 96
    with pytest.raises(ConfigError, match="shipped configs: cpu.yaml, default.yaml, demo.yaml"):
        load_config("nope.yaml")


def test_retired_keys_of_an_old_run_config_are_dropped_with_a_warning(tmp_path):
    old = tmp_path / "config.yaml"
    old.write_text("segment:\n  cell_close: 5\n  seed_threshold: 0.4\n  scale: 0.5\n")
    with pytest.warns(UserWarning, match="segment.cell_close, segment.seed_threshold are no longer used"):
        assert load_config(old).segment.scale == 0.5
    old.write_text("segment:\n  cell_closing: 5\n")
    with pytest.raises(ConfigError, match="unknown config key 'segment.cell_closing'"):
        load_config(old)
