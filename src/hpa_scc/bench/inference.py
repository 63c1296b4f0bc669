"""`hpa-scc bench predict` and `bench predict-memory`: inference speed and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

from hpa_scc.core.config import load_config, replace, save_config
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.core.layout import CONFIG_FILE, MODEL_FILE, SAMPLE_FILE, TEST_DIR
from hpa_scc.data.images import list_image_ids
from hpa_scc.model.classifier import build_classifier
from hpa_scc.model.engines import load_engine
from hpa_scc.model.export import export_onnx
from hpa_scc.predict.stream import PrepareSpec, prepared_stream
from hpa_scc.predict.submit import predict_submission
from hpa_scc.segment.cache import segment_folder
from hpa_scc.synth.dataset import generate_dataset


def _throughput(engine, batch: np.ndarray, repeats: int) -> float:
    """Crops/s of an engine on one pre-made batch (after one warm-up call)."""
    engine(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        engine(batch)
    return repeats * len(batch) / (time.perf_counter() - start)


def bench_predict(n_images: int = 16, size: int = 2048, model_size: int = 128, batch_size: int = 64,
                  repeats: int = 5, project_images: int = 559, project_cells: int = 25) -> dict:
    """Model-only crops/s per engine, streaming pipeline cells/s on synthetic 2048² images with
    cached masks (ratio to model-only), and the projected time for a 559-image test set."""
    cfg = load_config(None, [f"crops.size={model_size}", f"model.size={model_size}", f"predict.batch_size={batch_size}"])
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = root / "run"
        run.mkdir()
        build_classifier(cfg.model).save(run / MODEL_FILE)
        save_config(cfg, run / CONFIG_FILE)
        export_onnx(run)
        batch = np.random.default_rng(0).integers(0, 256, (batch_size, model_size, model_size, 4)).astype(np.float32)
        for name in ("keras", "onnx"):
            figures[f"{name}_model_crops_per_s"] = _throughput(load_engine(run, name), batch, repeats)
            print(f"model only, {name}: {figures[f'{name}_model_crops_per_s']:.1f} crops/s "
                  f"({model_size}px, batch {batch_size})")
        synth = SynthConfig(n_train=0, n_test=n_images, sizes=(size,), cells_min=project_cells - 5,
                            cells_max=project_cells + 5, cell_radius=0.09, seed=5, workers=2)
        generate_dataset(synth, root / "data", progress=False)
        images, masks = root / "data" / TEST_DIR, root / "masks"
        start = time.perf_counter()
        segment_folder(images, masks, cfg.segment, progress=False)
        seg_seconds = (time.perf_counter() - start) / len(list_image_ids(images))
        figures["segment_s_per_image"] = seg_seconds
        print(f"segmentation: {seg_seconds:.2f} s per {size}² image ({cfg.segment.workers} processes)")
        spec = PrepareSpec(str(images), str(masks), cfg.segment, cfg.crops, cfg.model.size, cfg.model.channels, None)
        ids = list_image_ids(images)
        list(prepared_stream(ids[:2], spec, cfg.predict.workers, cfg.predict.prefetch))  # start-up, page cache
        start = time.perf_counter()
        prep_cells = sum(len(p.cell_ids) for p in prepared_stream(ids, spec, cfg.predict.workers, cfg.predict.prefetch))
        figures["prepare_cells_per_s"] = prep_cells / (time.perf_counter() - start)
        print(f"preparation only (read, cached masks, crops, tokens; {cfg.predict.workers} processes): "
              f"{figures['prepare_cells_per_s']:.1f} cells/s")
        for name in ("keras", "onnx"):
            run_cfg = replace(cfg, predict=replace(cfg.predict, engine=name))
            predict_submission(run_cfg, run, images, root / "data" / SAMPLE_FILE, root / f"warm_{name}.csv",
                               masks=masks, progress=False)  # loads libraries, compiles
            start = time.perf_counter()
            result = predict_submission(run_cfg, run, images, root / "data" / SAMPLE_FILE,
                                        root / f"{name}.csv", masks=masks, progress=False)
            seconds = time.perf_counter() - start
            cells_per_s = result["cells"] / seconds
            ratio = cells_per_s / figures[f"{name}_model_crops_per_s"]
            # Both stages share the same cores: the best a pipeline can do is one cell's model time
            # plus its preparation time, spread over the cores (perfect overlap, no idle core).
            shared = 1.0 / (1.0 / figures[f"{name}_model_crops_per_s"] + 1.0 / figures["prepare_cells_per_s"])
            figures[f"{name}_pipeline_cells_per_s"] = cells_per_s
            figures[f"{name}_ratio"] = ratio
            figures[f"{name}_ratio_to_shared_bound"] = cells_per_s / shared
            print(f"pipeline, {name}: {result['cells']} cells of {result['images']} images in {seconds:.1f} s = "
                  f"{cells_per_s:.1f} cells/s: x{ratio:.2f} of model only, x{cells_per_s / shared:.2f} of the "
                  f"{shared:.1f} cells/s that model + preparation allow on shared cores (CSV, table, validation included)")
        best = max(("keras", "onnx"), key=lambda n: figures[f"{n}_pipeline_cells_per_s"])
        projected = project_images * (seg_seconds + project_cells / figures[f"{best}_pipeline_cells_per_s"])
        figures["projected_minutes"] = projected / 60
        print(f"projected: {project_images} images of {size}² with ~{project_cells} cells, segmentation included, "
              f"{best} engine: {projected / 60:.1f} min on this machine ({os.cpu_count()} cores)")
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
