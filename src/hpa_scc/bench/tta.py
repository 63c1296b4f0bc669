"""`hpa-scc bench tta`: what each test-time augmentation buys, for one model of the recipe.

    hpa-scc bench tta --config configs/cpu.yaml [--seed 0] [--train-images 160] [--test-images 40]

Trains the recipe's own weak-label model (`train.mode` of the config) on the generated set of
`bench quality` (same generator settings; reused when present), then predicts its test images
three times with the same model: TTA off, 3 views (the image and its two flips) and 8 views (all
flips and 90-degree turns). Prints mAP, per-cell AUC, model-only crops/s and the seconds of each
prediction, beside the floor. Writes OUT/tta.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hpa_scc.bench.inference import model_throughput
from hpa_scc.bench.quality import QualitySettings, bench_train_config, synth_config
from hpa_scc.core.config import Config, replace
from hpa_scc.core.files import atomic_write_text
from hpa_scc.core.layout import LABELS_FILE, SAMPLE_FILE, TEST_DIR, TRAIN_DIR, cells_table_path
from hpa_scc.data.tables import read_cells_table
from hpa_scc.evaluate.baselines import per_cell_truth, write_floor
from hpa_scc.evaluate.pipeline import ensure_generated, score_generated, segment_splits
from hpa_scc.metrics.classification import cell_auc
from hpa_scc.predict.submit import predict_submission
from hpa_scc.train.run import train

TTA_CHOICES = {"off": dict(tta=False, tta_rot90=False), "3 views": dict(tta=True, tta_rot90=False),
               "8 views": dict(tta=True, tta_rot90=True)}


def bench_tta(cfg: Config, settings: QualitySettings, out: Path) -> dict:
    """Train (or reuse) the recipe's model in OUT/run_MODE and score it with each TTA choice."""
    out.mkdir(parents=True, exist_ok=True)
    data, masks = out / "data", out / "masks"
    ensure_generated(synth_config(settings, cfg.synth.workers), data, progress=False)
    _, test_ids = segment_splits(data, masks, cfg.segment, progress=False)
    mode = cfg.train.mode
    run = out / f"run_{mode}"
    start = time.perf_counter()
    train(bench_train_config(cfg, settings, mode), data / TRAIN_DIR, data / LABELS_FILE, masks, run, None)
    print(f"bench tta: {mode} model of the recipe trained (or reused) in {time.perf_counter() - start:.0f} s")
    sample = data / SAMPLE_FILE
    truth = per_cell_truth(data, masks, test_ids, cfg.score.iou)
    rows = {"floor": {"map": score_generated(write_floor(sample, masks, out / "floor.csv"), data, cfg.score).map}}
    for name, changes in TTA_CHOICES.items():
        pcfg = replace(cfg, predict=replace(cfg.predict, **changes))
        path = out / f"tta_{name.replace(' ', '_')}.csv"
        start = time.perf_counter()
        predict_submission(pcfg, run, data / TEST_DIR, sample, path, masks=masks, force=True, progress=False)
        seconds = time.perf_counter() - start
        rows[name] = {"map": score_generated(path, data, cfg.score).map, "predict_seconds": seconds,
                      "cell_auc": cell_auc(read_cells_table(cells_table_path(path)), truth),
                      "model_crops_per_s": model_throughput(pcfg, run)}
    floor = rows["floor"]["map"]
    print(f"{'TTA':<8} {'mAP':>7} {'-floor':>7} {'cellAUC':>7} {'crops/s':>8} {'predict s':>9}")
    print(f"{'floor':<8} {floor:7.4f}")
    for name in TTA_CHOICES:
        r = rows[name]
        print(f"{name:<8} {r['map']:7.4f} {r['map'] - floor:+7.4f} {r['cell_auc']:7.4f} "
              f"{r['model_crops_per_s']:8.1f} {r['predict_seconds']:9.1f}")
    figures = {"seed": settings.seed, "mode": mode, "n_train": settings.n_train, "n_test": settings.n_test, "rows": rows}
    atomic_write_text(out / "tta.json", json.dumps(figures, indent=1))
    print(f"figures in {out / 'tta.json'}")
    return figures
