"""`bench quality`'s generated sets: the other appearance and the low-expression variant really
change what is drawn, and the table gives each method's share of the truth model's gain."""

import numpy as np
import pytest

from hpa_scc.bench.quality import QualitySettings, format_table, mean_row, prediction_plans, repeat_suffix, synth_config
from hpa_scc.synth.appearances import APPEARANCES
from hpa_scc.synth.draw import generate_image


def test_other_appearance_and_low_expression_reach_the_generator():
    default = synth_config(QualitySettings(), 1)
    other = synth_config(QualitySettings(appearance="other", p_express=0.3), 1)
    assert other.p_express == 0.3 and default.p_express == 0.75
    for key, value in APPEARANCES["other"].items():
        assert getattr(other, key) == value != getattr(default, key), key
    a, b = generate_image(3, 384, default), generate_image(3, 384, other)
    assert len(np.unique(b.cells)) > len(np.unique(a.cells))  # smaller, denser cells
    assert float(b.rgby[..., 2].mean()) < float(a.rgby[..., 2].mean())  # the dim exposure
    with pytest.raises(ValueError, match="unknown appearance"):
        QualitySettings(appearance="bright")


def test_table_gives_each_methods_share_of_the_truth_gain():
    rows = {name: {"map": m, "cell_auc": 0.5, "per_class_ap": {}} for name, m in
            (("floor", 0.6), ("weak", 0.75), ("truth", 0.8))}
    table = format_table(rows)
    weak_line = next(line for line in table.splitlines() if line.startswith("weak"))
    assert " 0.75 " in weak_line  # (0.75 - 0.6) / (0.8 - 0.6)
    assert "/truth" in table.splitlines()[0]


def test_image_model_and_attention_mil_settings():
    from hpa_scc.bench.quality import bench_train_config
    from hpa_scc.core.config import load_config

    cfg = load_config("configs/cpu.yaml")
    settings = QualitySettings()
    image = bench_train_config(cfg, settings, "image")
    assert (image.train.epochs, image.train.batch_size, image.model.size) == (20, 8, settings.image_size)
    assert image.train.batch_size < cfg.train.batch_size  # more optimizer steps from its few images
    attn = bench_train_config(cfg, settings, "attn")
    assert attn.train.mode == "mil" and attn.train.mil_pooling == "attention" and attn.train.pseudo_rounds == 0
    mil_oof = bench_train_config(cfg, settings, "mil-oof")
    assert mil_oof.train.mode == "mil" and mil_oof.train.pseudo_folds >= 2 and mil_oof.train.pseudo_rounds >= 1
    ensemble = bench_train_config(cfg, settings, "mil-ens")
    assert (ensemble.train.mode, ensemble.train.members) == ("mil", 3) and cfg.train.members == 1
    assert ensemble.train.mil_bag_size == cfg.train.mil_bag_size  # the recipe's mil, several times
    with pytest.raises(ValueError, match="unknown methods"):
        QualitySettings(methods=("attention",))


def test_every_weak_method_gets_a_derived_negative_row():
    plans = prediction_plans(("mil", "attn"))
    derived = {name for name, (_, changes) in plans.items() if changes.get("negative") == "derived"}
    assert derived == {"weak+neg", "mil+neg", "attn+neg"}
    assert all(changes["negative"] == "predicted" for name, (_, changes) in plans.items() if name not in derived)
    assert plans["mil+neg"][0] == "mil" and plans["weak+neg"][0] == "cells"
    assert list(plans)[0] == "broadcast" and list(plans)[-1] == "truth"


def test_repeats_give_the_mean_and_the_spread_of_their_trainings():
    runs = [{"map": 0.76, "cell_auc": 0.78, "per_class_ap": {"2": 0.4, "8": 0.2}},
            {"map": 0.84, "cell_auc": 0.84, "per_class_ap": {"2": 0.6}}]
    row = mean_row(runs)
    assert row["map"] == pytest.approx(0.80) and row["cell_auc"] == pytest.approx(0.81)
    assert row["per_class_ap"] == pytest.approx({"2": 0.5, "8": 0.2})  # a class missing from a repeat: the others'
    assert row["map_runs"] == [0.76, 0.84]
    rows = {"floor": mean_row([{"map": 0.6, "cell_auc": 0.5, "per_class_ap": {}}]), "mil": row,
            "truth": mean_row([{"map": 0.9, "cell_auc": 0.9, "per_class_ap": {}}] * 2)}
    table = format_table(rows).splitlines()
    assert "spread" in table[0]
    mil = next(line for line in table if line.startswith("mil"))
    assert mil.split()[1:3] == ["0.8000", "0.0800"]  # mean, max - min
    assert "spread" not in format_table({"floor": rows["floor"], "truth": rows["floor"]}).splitlines()[0]
    assert (repeat_suffix(0), repeat_suffix(2)) == ("", "_r2")  # the first repeat keeps the old names
    with pytest.raises(ValueError, match="repeats"):
        QualitySettings(repeats=0)
