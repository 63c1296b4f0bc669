"""`hpa-scc bench predict --config`: the recipe's own settings, the test set's size mix, the JSON figures."""

import json

import pytest

from hpa_scc.app.cli import main
from hpa_scc.bench.inference import TEST_SIZE_MIX, sides_in_mix


def test_sides_follow_the_test_sets_size_mix():
    assert sides_in_mix(559) == [2048] * 462 + [1728] * 68 + [3072] * 29
    sides = sides_in_mix(12)
    assert len(sides) == 12 and sides.count(2048) == 10 and sides.count(1728) == 1 and sides.count(3072) == 1
    assert sides_in_mix(1) == [2048]
    assert set(sides_in_mix(40)) == set(TEST_SIZE_MIX)


@pytest.mark.slow
def test_bench_predict_times_the_recipe_it_is_given(tmp_path, capsys):
    out = tmp_path / "predict.json"
    code = main(["bench", "predict", "--config", "cpu.yaml", "--images", "2", "--json", str(out),
                 "--set", "crops.size=32", "--set", "model.size=32", "--set", "predict.tta_rot90=false"])
    assert code in (0, None)
    figures = json.loads(out.read_text())
    assert figures["settings"]["model_size"] == 32 and figures["settings"]["tta"] and not figures["settings"]["tta_rot90"]
    for key in ("model_crops_per_s", "preparation_cells_per_s", "pipeline_cells_per_s", "projected_minutes"):
        assert figures[key] > 0, key
    # the pipeline cannot beat the bound of two stages sharing the cores by much (timing noise)
    assert 0 < figures["ratio_to_bound"] < 1.5
    printed = capsys.readouterr().out
    assert "TTA 3 views" in printed and "projected_minutes" in printed
