"""`hpa-scc bench segment`: how well and how fast the project's segmenter finds the cells.

    hpa-scc bench segment --out bench/segment

Three parts, one JSON (`OUT/segment.json`) and one overlay PNG per real image (`OUT/overlays/`: the
image in grey with hpacellseg outlines cyan and the project's magenta; hpacellseg's cells with the
missed ones red; the project's cells with the extra ones yellow):
- real HPA images (`../shared/data/hpa_real`) against HPA-Cell-Segmentation's masks: per image
  and in total, F1 / precision / recall at IoU 0.6 and the mean IoU of the matched cells;
- three generated sets with true masks, the generator's default appearance (seed 7), another
  one nothing was tuned on (`OTHER_APPEARANCE`) and a confluent field of touching, lobed nuclei
  (`PACKED_APPEARANCE`, a look the shipped U-Net never trained on): F1 against the truth, recall
  and matched IoU per kind of true cell (`metrics.cell_kinds`: edge, mitotic, touching, touching
  nuclei, faint, large), and the floor submission's mAP (every cell every label at one confidence,
  no model) on the true masks vs on the project's masks, whose difference is the score the
  segmentation costs;
- seconds per image on one core and the peak RSS of a process that segments one image, for
  1728², 2048² and 3072² inputs (a real dense field resized to each side).
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from hpa_scc.core.config_images import SegmentConfig, SynthConfig
from hpa_scc.core.files import atomic_write_text
from hpa_scc.core.layout import SAMPLE_FILE, SOLUTION_FILE, TEST_DIR, TRUTH_DIR, truth_paths
from hpa_scc.core.parallel import process_pool
from hpa_scc.data.images import find_shared_data, list_image_ids, read_label_png, read_rgby
from hpa_scc.evaluate.baselines import write_floor
from hpa_scc.evaluate.pipeline import ensure_generated
from hpa_scc.metrics.agreement import agreement_totals, cell_agreement
from hpa_scc.metrics.cell_kinds import cell_kinds, found_by_kind, merge_kinds
from hpa_scc.metrics.competition import score_files
from hpa_scc.report.pictures import agreement_panels, composite, save_rgb
from hpa_scc.segment.cache import read_masks, segment_folder
from hpa_scc.segment.segmenter import make_segmenter
from hpa_scc.synth.appearances import APPEARANCES
from hpa_scc.synth.dataset import read_mitotic
from hpa_scc.synth.draw import generate_image

SPEED_SIDES = (1728, 2048, 3072)


def agreement_overlay(rgby: np.ndarray, pred: np.ndarray, reference: np.ndarray, agreement: dict,
                      max_side: int = 1024) -> np.ndarray:
    """uint8 RGB picture of three panels, each at most `max_side` px (see `report.pictures.agreement_panels`)."""
    scale = min(1.0, max_side / max(rgby.shape[:2]))
    shape = (round(rgby.shape[1] * scale), round(rgby.shape[0] * scale))
    small = cv2.resize(rgby, shape, interpolation=cv2.INTER_AREA)
    pred = cv2.resize(pred.astype(np.uint16), shape, interpolation=cv2.INTER_NEAREST)
    reference = cv2.resize(reference.astype(np.uint16), shape, interpolation=cv2.INTER_NEAREST)
    picture = composite(small / max(float(np.percentile(small, 99.5)), 1e-6))
    return agreement_panels(picture, pred, reference, agreement["missed"], agreement["extra"])


def bench_real(real: Path, cfg: SegmentConfig, out: Path) -> dict:
    """Agreement with hpacellseg's masks on every real image; overlays into OUT/overlays."""
    segmenter = make_segmenter(cfg)
    per_image = {}
    for image_id in list_image_ids(real / "images"):
        rgby = read_rgby(real / "images", image_id)
        reference = read_label_png(real / "hpacellseg_masks" / f"{image_id}_predictedmask.png")
        cells = segmenter(rgby).cells
        agreement = cell_agreement(cells, reference)
        save_rgb(out / "overlays" / f"{image_id}.png", agreement_overlay(rgby, cells, reference, agreement))
        per_image[image_id] = {k: v for k, v in agreement.items() if k not in ("missed", "extra")}
        print(f"real {image_id[:8]} {rgby.shape[1]}x{rgby.shape[0]}: cells {agreement['n_pred']} vs "
              f"{agreement['n_reference']} reference, P {agreement['precision']:.2f} R {agreement['recall']:.2f} "
              f"F1 {agreement['f1']:.2f}, matched IoU {agreement['mean_iou']:.2f}")
    totals = agreement_totals(per_image)
    print(f"real total: F1 mean {totals['mean_f1']:.3f} (min {totals['min_f1']:.2f}), pooled {totals['pooled_f1']:.3f}, "
          f"P {totals['precision']:.3f} R {totals['recall']:.3f}, matched IoU {totals['mean_iou']:.3f}; "
          f"overlays in {out / 'overlays'}")
    return {"images": per_image, "total": totals}


# A generated set of another appearance than the one anything was tuned on: smaller, denser cells,
# dimmer and blurrier, noisier, more mitotic cells, other sides and seed.
OTHER_APPEARANCE = SynthConfig(n_train=0, n_test=24, sizes=(512, 768), seed=11, **APPEARANCES["other"])
PACKED_APPEARANCE = SynthConfig(n_train=0, n_test=24, sizes=(512, 768), seed=43, **APPEARANCES["packed"])


def bench_generated(cfg: SegmentConfig, synth: SynthConfig, out: Path, name: str = "generated") -> dict:
    """F1 against the truth on a generated set, recall and matched IoU per kind of cell (edge,
    mitotic, touching, faint, large), and the floor mAP with true vs project masks."""
    data, masks = out / name, out / f"{name}_masks"
    ensure_generated(synth, data, progress=False)
    ids = list_image_ids(data / TEST_DIR)
    segment_folder(data / TEST_DIR, masks, cfg, ids=ids, progress=False, force=True)
    mitotic = read_mitotic(data)
    per_image, by_kind = {}, []
    for i in ids:
        cells = read_masks(masks, i).cells
        truth, nuclei = (read_label_png(path) for path in truth_paths(data, i))
        per_image[i] = cell_agreement(cells, truth)
        kinds = cell_kinds(truth, read_rgby(data / TEST_DIR, i), mitotic.get(i, set()), nuclei)
        by_kind.append(found_by_kind(cells, truth, kinds))
    totals = agreement_totals(per_image)
    kinds = merge_kinds(by_kind)
    sample, solution = data / SAMPLE_FILE, data / SOLUTION_FILE
    floor_true = score_files(write_floor(sample, data / TRUTH_DIR, out / f"{name}_floor_truemasks.csv"), solution).map
    floor_project = score_files(write_floor(sample, masks, out / f"{name}_floor_projectmasks.csv"), solution).map
    print(f"{name} ({len(ids)} test images, sides {list(synth.sizes)}, seed {synth.seed}): F1 mean "
          f"{totals['mean_f1']:.3f} (min {totals['min_f1']:.2f}), pooled {totals['pooled_f1']:.3f}; floor mAP "
          f"{floor_true:.4f} with the true masks, {floor_project:.4f} with the project's "
          f"(segmentation costs {floor_true - floor_project:+.4f})")
    print(f"  {name} by kind of true cell: " + "; ".join(
        f"{kind} {k['cells']} cells, recall {k['recall']:.2f}, matched IoU {k['mean_iou']:.2f}"
        for kind, k in kinds.items() if k["cells"]))
    return {"total": totals, "floor_true_masks": floor_true, "floor_project_masks": floor_project,
            "segmentation_cost": floor_true - floor_project, "kinds": kinds,
            "images": {i: {k: v for k, v in r.items() if k not in ("missed", "extra")} for i, r in per_image.items()}}


def _time_one(args: tuple[np.ndarray, SegmentConfig, int]) -> tuple[float, float]:
    """In a fresh process limited to one thread: best of `repeats` seconds, peak RSS MB."""
    rgby, cfg, repeats = args
    cv2.setNumThreads(1)

    segmenter = make_segmenter(cfg)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter(rgby)
        seconds.append(time.perf_counter() - start)
    return min(seconds), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_speed(real: Optional[Path], cfg: SegmentConfig, repeats: int = 3) -> dict:
    """Seconds per image (one core) and peak RSS for each side in SPEED_SIDES."""
    if real is not None:  # the densest real field, resized to each side
        ids = list_image_ids(real / "images")
        source = max((read_rgby(real / "images", i) for i in ids), key=lambda im: float(im[..., 2].mean()))
    else:
        source = generate_image(0, 2048, SynthConfig()).rgby
    figures = {}
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in env})
    try:
        for side in SPEED_SIDES:
            rgby = cv2.resize(source, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            with process_pool(1, spawn=True) as pool:  # a fresh process: its peak RSS is this image's
                seconds, rss = pool.submit(_time_one, (rgby, cfg, repeats)).result()
            figures[str(side)] = {"seconds": seconds, "peak_rss_mb": rss}
            print(f"speed {side}x{side}: {seconds:.2f} s on one core, peak RSS {rss:.0f} MB")
    finally:
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return figures


def bench_segment(cfg: SegmentConfig, out: Path, real: Optional[Path] = None, synth: Optional[SynthConfig] = None) -> dict:
    """All three parts (see module docstring); writes OUT/segment.json and returns the figures."""
    out.mkdir(parents=True, exist_ok=True)
    real = real or find_shared_data()
    figures: dict = {"settings": {"backend": cfg.backend}}
    if real is not None:
        figures["real"] = bench_real(real, cfg, out)
    else:
        print("real images: ../shared/data/hpa_real not found (set HPA_REAL_DATA), skipped")
    figures["generated"] = bench_generated(cfg, synth or SynthConfig(n_train=0, n_test=24, seed=7), out)
    figures["other_appearance"] = bench_generated(cfg, OTHER_APPEARANCE, out, "other_appearance")
    figures["packed_appearance"] = bench_generated(cfg, PACKED_APPEARANCE, out, "packed_appearance")
    figures["speed"] = bench_speed(real, cfg)
    atomic_write_text(out / "segment.json", json.dumps(figures, indent=1))
    print(f"figures in {out / 'segment.json'}")
    return figures
