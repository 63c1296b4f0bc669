"""`hpa-scc bench predict` and `bench predict-memory`: inference speed and peak memory.

    hpa-scc bench predict --config configs/cpu.yaml --json bench/predict_cpu.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from hpa_scc.core.config import Config, load_config, save_config
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.files import atomic_write_text
from hpa_scc.core.layout import CONFIG_FILE, MODEL_FILE, SAMPLE_FILE, TEST_DIR
from hpa_scc.data.images import list_image_ids
from hpa_scc.model.classifier import build_classifier
from hpa_scc.predict.stream import PrepareSpec, prepared_stream
from hpa_scc.predict.run_settings import read_run_settings
from hpa_scc.predict.submit import effective_batch_size, load_engines, predict_submission
from hpa_scc.synth.dataset import generate_dataset


# The 559 test images by side (sample_submission.csv): 462 at 2048², 68 at 1728², 29 at 3072².
TEST_SIZE_MIX = {2048: 462, 1728: 68, 3072: 29}


def sides_in_mix(n_images: int, mix: dict[int, int] = TEST_SIZE_MIX) -> list[int]:
    """`n_images` sides in the proportions of `mix` (largest remainders), largest count first."""
    total = sum(mix.values())
    shares = {side: n_images * count / total for side, count in mix.items()}
    counts = {side: int(share) for side, share in shares.items()}
    for side in sorted(shares, key=lambda s: shares[s] - counts[s], reverse=True)[: n_images - sum(counts.values())]:
        counts[side] += 1
    return [side for side in sorted(counts, key=counts.get, reverse=True) for _ in range(counts[side])]


def model_throughput(cfg: Config, run: Path, repeats: int = 3) -> float:
    """Model-only crops/s of the run's engine with cfg.predict's engine, TTA and (CPU-capped) batch
    size, on one batch of random crops (after one warm-up call)."""
    engine, _, _ = load_engines(run, read_run_settings(run), cfg.predict)
    batch = np.random.default_rng(0).integers(0, 256, (effective_batch_size(cfg.predict), cfg.model.size, cfg.model.size,
                                                       cfg.model.channels)).astype(np.float32)
    engine(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        engine(batch)
    return repeats * len(batch) / (time.perf_counter() - start)


def _bench_data(root: Path, n_images: int, cells_per_image: int) -> tuple[Path, Path]:
    """Generated test images in the test set's size mix, ~cells_per_image cells each -> (images, sample)."""
    sides = sides_in_mix(n_images)
    data = root / "data"
    for side in sorted(set(sides)):
        synth = SynthConfig(n_train=0, n_test=sides.count(side), sizes=(side,), cells_min=cells_per_image - 5,
                            cells_max=cells_per_image + 5, cell_radius=0.09, seed=5 + side, workers=2)
        generate_dataset(synth, root / f"data_{side}", progress=False)
    (data / TEST_DIR).mkdir(parents=True)
    lines = []
    for side in sorted(set(sides)):
        part = root / f"data_{side}"
        for path in sorted((part / TEST_DIR).iterdir()):
            path.rename(data / TEST_DIR / f"s{side}_{path.name}")
        header, *rows = (part / SAMPLE_FILE).read_text().splitlines()
        lines += [f"s{side}_{row}" for row in rows]
    (data / SAMPLE_FILE).write_text("\n".join([header] + lines) + "\n")
    return data / TEST_DIR, data / SAMPLE_FILE


def bench_predict(cfg: Config, n_images: int = 12, repeats: int = 3, cells_per_image: int = 25,
                  project_images: int = 559, json_out: Optional[Path] = None) -> dict:
    """The recipe `cfg` as shipped (engine, crop and model side, TTA, batch size, segmentation) on
    generated images in the test set's size mix: model-only crops/s (TTA included), preparation-only
    cells/s (read, segment, crops, tokens), pipeline cells/s, its ratio to the bound
    1 / (1/model + 1/preparation) of two stages sharing the cores, and the projected minutes for
    the `project_images` test images, segmentation and start-up included."""
    pcfg = cfg.predict
    figures: dict = {"settings": {"engine": pcfg.engine, "crop_size": cfg.crops.size, "model_size": cfg.model.size,
                                  "tta": pcfg.tta, "tta_rot90": pcfg.tta_rot90, "batch_size": effective_batch_size(pcfg),
                                  "segment_backend": cfg.segment.backend, "workers": pcfg.workers,
                                  "images": n_images, "cores": os.cpu_count()}}
    print(f"recipe: {pcfg.engine} engine, {cfg.crops.size} px crops -> {cfg.model.size} px model, TTA "
          f"{'8 views' if pcfg.tta and pcfg.tta_rot90 else '3 views' if pcfg.tta else 'off'}, batch {effective_batch_size(pcfg)}, "
          f"segmenter {cfg.segment.backend}, {pcfg.workers} preparing processes, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        run.mkdir()
        build_classifier(cfg.model).save(run / MODEL_FILE)
        save_config(cfg, run / CONFIG_FILE)
        model = figures["model_crops_per_s"] = model_throughput(cfg, run, repeats)  # the ONNX engine exports model.onnx here
        print(f"model only: {model:.1f} crops/s (TTA included)")
        images, sample = _bench_data(root, n_images, cells_per_image)
        ids = list_image_ids(images)
        spec = PrepareSpec(str(images), None, cfg.segment, cfg.crops, cfg.model.size, cfg.model.channels, None)
        list(prepared_stream(ids[:2], spec, pcfg.workers, pcfg.prefetch))  # process start-up, page cache
        start = time.perf_counter()
        cells = sum(len(p.cell_ids) for p in prepared_stream(ids, spec, pcfg.workers, pcfg.prefetch))
        prep = figures["preparation_cells_per_s"] = cells / (time.perf_counter() - start)
        print(f"preparation only (read, segment, crops, tokens): {prep:.1f} cells/s, {cells / len(ids):.1f} cells an image")
        start = time.perf_counter()
        result = predict_submission(cfg, run, images, sample, root / "sub.csv", progress=False)
        seconds = time.perf_counter() - start
        pipeline = figures["pipeline_cells_per_s"] = result["cells"] / seconds
        bound = figures["bound_cells_per_s"] = 1.0 / (1.0 / model + 1.0 / prep)
        figures["ratio_to_bound"] = pipeline / bound
        figures["pipeline_seconds"] = seconds
        minutes = figures["projected_minutes"] = project_images * seconds / len(ids) / 60
        print(f"pipeline (start-up, segmentation, model, CSV, validation): {result['cells']} cells of "
              f"{result['images']} images in {seconds:.1f} s = {pipeline:.1f} cells/s, ratio_to_bound "
              f"{figures['ratio_to_bound']:.2f} (bound {bound:.1f} cells/s)")
        print(f"projected_minutes: {minutes:.1f} for {project_images} test images in the test set's size mix "
              f"on this machine ({os.cpu_count()} cores)")
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(figures, indent=1))
        print(f"figures in {json_out}")
    return figures


def bench_predict_memory(config: Optional[str] = "default.yaml", size: int = 3072) -> dict:
    """Peak RSS of `hpa-scc predict` on one generated `size`² image (segmentation, crops, model at
    `config`'s input side, TTA as configured), in a fresh process with predict.workers 0."""
    cfg = load_config(config, ["predict.workers=0"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(SynthConfig(n_train=0, n_test=1, sizes=(size,), seed=9, workers=1), root / "data", progress=False)
        run = root / "run"
        run.mkdir()
        build_classifier(cfg.model).save(run / MODEL_FILE)
        save_config(cfg, run / CONFIG_FILE)
        command = [sys.executable, "-c", "import resource, sys; from hpa_scc.app.cli import main; code = main(sys.argv[1:]); "
                   "print(f'PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}'); sys.exit(code)",
                   "predict", "--model", str(run), "--images", str(root / "data" / TEST_DIR),
                   "--sample", str(root / "data" / SAMPLE_FILE), "--out", str(root / "sub.csv"),
                   "--quiet", "--workers", "0"] + (["--config", config] if config else [])
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"predict failed: {done.stderr[-500:]}")
    peak = float(done.stdout.split("PEAK_RSS_MB")[-1].split()[0])
    print(f"predict one {size}² image ({cfg.model.size} px model, TTA {cfg.predict.tta}, one process): "
          f"peak RSS {peak:.0f} MB, {seconds:.1f} s")
    return {"size": size, "model_size": cfg.model.size, "peak_rss_mb": peak, "seconds": seconds}
