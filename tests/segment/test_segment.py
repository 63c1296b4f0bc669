import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpa_scc.core.config_images import SegmentConfig, SynthConfig
from hpa_scc.core.errors import InputError
from hpa_scc.core.layout import mask_paths
from hpa_scc.data.images import list_image_ids, read_label_png, read_rgby
from hpa_scc.metrics.agreement import f1_score, match_cells
from hpa_scc.segment.cache import read_masks, segment_folder
from hpa_scc.segment.classical import seam_strength, segment_classical
from hpa_scc.segment.label_cell import label_cell
from hpa_scc.segment.maps import maps_from_labels
from hpa_scc.segment.segmenter import make_segmenter
from hpa_scc.synth.draw import generate_image

CFG = SegmentConfig()
# The synthetic bar is below the benchmark's 0.99 (hpa-scc bench segment) to leave room for noise.
SYNTH_F1_BAR = 0.9


def test_synthetic_f1_above_bar():
    totals = np.zeros(3, int)
    for seed, size in ((1, 384), (2, 512), (3, 640)):
        image = generate_image(seed, size, SynthConfig())
        seg = segment_classical(image.rgby, CFG)
        assert seg.cells.dtype == np.uint16 and seg.cells.shape == (size, size)
        totals += match_cells(seg.cells, image.cells)
    assert f1_score(*totals.tolist())[2] >= SYNTH_F1_BAR


def test_cells_and_nuclei_share_ids():
    image = generate_image(5, 512, SynthConfig())
    seg = segment_classical(image.rgby, CFG)
    ids = set(np.unique(seg.cells)) - {0}
    assert ids == set(range(1, len(ids) + 1))
    assert np.all(seg.cells[seg.nuclei > 0] == seg.nuclei[seg.nuclei > 0])
    assert set(np.unique(seg.nuclei)) - {0} == ids  # every cell has its nucleus


def test_empty_image_has_no_cells():
    for rgby in (np.zeros((256, 256, 4), np.float32), np.full((300, 200, 4), 0.3, np.float32)):
        seg = segment_classical(rgby, CFG)
        assert seg.n_cells == 0 and seg.cells.shape == rgby.shape[:2]


def test_non_square_and_sizes():
    image = generate_image(8, 512, SynthConfig())
    rgby = image.rgby[:, :384]
    seg = segment_classical(rgby, CFG)
    assert seg.cells.shape == (512, 384) and seg.n_cells > 3


def test_more_than_255_cells():
    # A grid of small nuclei in cytoplasm: 20 x 15 = 300 cells at 1024 x 768.
    h, w = 1024, 768
    rgby = np.zeros((h, w, 4), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (yy % 51) - 25, (xx % 51) - 25
    rgby[..., 2] = ((cy ** 2 + cx ** 2) < 12 ** 2) * 0.8
    rgby[..., 0] = rgby[..., 3] = ((yy % 51 > 1) & (xx % 51 > 1)) * 0.4
    cfg = SegmentConfig(nucleus_min_area=300, cell_min_area=600, scale=1.0)
    seg = segment_classical(rgby, cfg)
    assert seg.n_cells == 300 and seg.cells.max() == 300


def test_touching_nuclei_are_split():
    rgby = np.zeros((512, 512, 4), np.float32)
    yy, xx = np.mgrid[0:512, 0:512]
    for cx in (200, 290):  # two discs of radius 50 whose centres are 90 apart: they overlap
        rgby[..., 2] += ((yy - 256) ** 2 + (xx - cx) ** 2 < 50 ** 2) * 0.7
        rgby[..., 0] += ((yy - 256) ** 2 + (xx - cx) ** 2 < 110 ** 2) * 0.3
    rgby = np.clip(rgby, 0, 1)
    seg = segment_classical(rgby, SegmentConfig(scale=1.0))
    assert seg.n_cells == 2


def test_seam_strength_marks_dim_seams_between_bright_cells_only():
    signal = np.zeros((64, 200), np.float32)
    signal[:, 20:180] = 0.6  # one bright slab ...
    signal[:, 98:102] = 0.2  # ... with a dim seam 4 px wide
    seams = seam_strength(signal, radius=6)
    assert seams[32, 100] > 0.4  # the seam
    assert seams[32, 50] < 0.02 and seams[32, 150] < 0.02  # plateaus
    assert seams[32, 5] < 0.02  # the dark background beyond the slab is no seam
    wide = signal.copy()
    wide[:, 60:140] = 0.2  # a gap wider than the disk is background, not a seam
    assert seam_strength(wide, radius=6)[32, 100] < 0.02


def test_sixteen_bit_input_same_as_eight(tmp_path):
    image = generate_image(9, 384, SynthConfig())
    q8 = np.round(image.rgby * 255) / 255
    q16 = np.round(image.rgby * 65535) / 65535
    a = segment_classical(q8.astype(np.float32), CFG).cells
    b = segment_classical(q16.astype(np.float32), CFG).cells
    assert f1_score(*match_cells(a, b))[2] >= 0.9


def _round_cells(h, w, centres, r_nuc, r_cell):
    """Label images of round cells (touching ones split half-way) with round nuclei, as hpacellseg maps."""
    yy, xx = np.mgrid[0:h, 0:w]
    distance = np.stack([np.hypot(yy - cy, xx - cx) for cy, cx in centres]) if centres else np.full((1, h, w), np.inf)
    nearest = distance.argmin(axis=0)
    closest = distance.min(axis=0)
    cells = np.where(closest < r_cell, nearest + 1, 0).astype(np.uint16)
    nuclei = np.where(closest < r_nuc, nearest + 1, 0).astype(np.uint16)
    return maps_from_labels(cells, nuclei)


def test_postprocessing_of_hpacellseg_maps():
    nuclei, cells = _round_cells(1024, 1024, [(256, 256), (256, 600), (720, 400)], 72, 180)
    nuclei_labels, cell_labels = label_cell(nuclei, cells)
    assert cell_labels.shape == (1024, 1024)
    assert cell_labels.max() == 3  # touching cells (centres 344 px apart, radius 180) stay separate
    assert np.all(cell_labels[nuclei_labels > 0] == nuclei_labels[nuclei_labels > 0])
    empty_n, empty_c = _round_cells(256, 256, [], 10, 20)
    assert label_cell(empty_n, empty_c)[1].max() == 0


def test_hpacellseg_backend_missing_is_clear():
    with pytest.raises(InputError, match="HPA-Cell-Segmentation|local hpacellseg weight"):
        make_segmenter(SegmentConfig(backend="hpacellseg"))


def test_cache_skips_and_rejects_other_settings(tiny_data, tmp_path):
    images = tiny_data / "test"
    out = tmp_path / "masks"
    done = segment_folder(images, out, CFG, workers=1, progress=False)
    assert set(done) == set(list_image_ids(images))
    stamp = {i: mask_paths(out, i)[0].stat().st_mtime_ns for i in done}
    assert segment_folder(images, out, CFG, workers=1, progress=False) == {}
    assert all(mask_paths(out, i)[0].stat().st_mtime_ns == t for i, t in stamp.items())
    with pytest.raises(InputError, match="other segmentation settings"):
        segment_folder(images, out, SegmentConfig(cell_threshold=0.5), progress=False)
    first = next(iter(done))
    seg = read_masks(out, first)
    truth = read_label_png(tiny_data / "truth" / f"{first}_cells.png")
    assert f1_score(*match_cells(seg.cells, truth))[2] > 0.5


def test_resume_after_kill(tiny_data, tmp_path):
    """SIGKILL a real `hpa-scc segment` mid-run; the re-run finishes with identical masks."""
    images = tiny_data / "train"
    reference = tmp_path / "ref"
    segment_folder(images, reference, CFG, workers=1, progress=False)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hpa_scc", "segment", "--images", str(images), "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("*_cells.png")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd, check=True)
    assert not list(out.glob(".*.tmp*"))  # a kill can leave a temp file; the re-run removes it
    names = sorted(p.name for p in reference.glob("*.png"))
    assert names == sorted(p.name for p in out.glob("*.png"))
    for name in names:
        assert np.array_equal(read_label_png(reference / name), read_label_png(out / name))


@pytest.mark.slow
def test_dask_local_cluster(tiny_data, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            done = segment_folder(tiny_data / "test", tmp_path / "m", CFG, scheduler=client, progress=False)
    assert set(done) == set(list_image_ids(tiny_data / "test"))
    local = segment_folder(tiny_data / "test", tmp_path / "l", CFG, workers=1, progress=False)
    for image_id in local:
        assert np.array_equal(read_masks(tmp_path / "m", image_id).cells, read_masks(tmp_path / "l", image_id).cells)


def test_real_images(real_data):
    from hpa_scc.data.images import list_image_ids

    image_id = list_image_ids(real_data / "images")[0]
    rgby = read_rgby(real_data / "images", image_id)
    seg = segment_classical(rgby, CFG)
    reference = read_label_png(real_data / "hpacellseg_masks" / f"{image_id}_predictedmask.png")
    assert seg.cells.shape == rgby.shape[:2] and seg.cells.dtype == np.uint16
    assert 0.5 * reference.max() <= seg.n_cells <= 2 * reference.max()


def test_log_threshold_keeps_faint_cytoplasm(rng):
    from hpa_scc.segment.classical import _threshold

    yy, xx = np.mgrid[:200, :200]
    radius = np.hypot(yy - 100, xx - 100)
    plane = np.select([radius < 40, radius < 70], [1.0, 0.04], 0.002)  # bright centre, faint edge, background
    plane = np.clip(plane + rng.normal(0, 0.001, plane.shape), 0, None).astype(np.float32)
    ring, background = (radius >= 45) & (radius < 65), radius >= 75
    linear = _threshold(plane, 1.0)
    logged = _threshold(plane, 1.0, log_floor=0.001)
    assert (plane[ring] > linear).mean() < 0.5  # a linear Otsu cut drops most of the faint edge
    assert (plane[ring] > logged).mean() > 0.99  # the log-space cut keeps it...
    assert (plane[background] > logged).mean() < 0.01  # ... and still drops the background


def test_cell_agreement_names_missed_and_extra_cells():
    from hpa_scc.metrics.agreement import cell_agreement

    reference = np.zeros((60, 60), np.uint16)
    reference[5:25, 5:25] = 1
    reference[35:55, 35:55] = 2
    pred = np.zeros_like(reference)
    pred[5:25, 5:25] = 3  # same cell, other ID
    pred[35:45, 5:25] = 4  # no reference cell there
    result = cell_agreement(pred, reference)
    assert (result["tp"], result["n_pred"], result["n_reference"]) == (1, 2, 2)
    assert result["missed"] == [2] and result["extra"] == [4]
    assert result["f1"] == pytest.approx(0.5) and result["mean_iou"] == pytest.approx(1.0)


def test_bench_segment_on_a_real_image(real_data, tmp_path):
    import shutil

    from hpa_scc.bench.segmentation import bench_real

    image_id = list_image_ids(real_data / "images")[0]
    (tmp_path / "real" / "images").mkdir(parents=True)
    (tmp_path / "real" / "hpacellseg_masks").mkdir()
    for path in (real_data / "images").glob(f"{image_id}_*.png"):
        shutil.copy(path, tmp_path / "real" / "images")
    shutil.copy(real_data / "hpacellseg_masks" / f"{image_id}_predictedmask.png", tmp_path / "real" / "hpacellseg_masks")
    figures = bench_real(tmp_path / "real", CFG, tmp_path / "out")
    row = figures["images"][image_id]
    assert row["n_reference"] == read_label_png(real_data / "hpacellseg_masks" / f"{image_id}_predictedmask.png").max()
    assert 0.5 <= row["f1"] <= 1.0 and figures["total"]["mean_f1"] == row["f1"]
    import cv2

    overlay = cv2.imread(str(tmp_path / "out" / "overlays" / f"{image_id}.png"))
    assert overlay is not None and overlay.shape[0] == 1024 and overlay.shape[1] == 3 * 1024 + 2 * 8  # three panels


def test_segmenter_is_built_once_per_process():
    from hpa_scc.segment.segmenter import shared_segmenter

    assert shared_segmenter(SegmentConfig()) is shared_segmenter(SegmentConfig())
    assert shared_segmenter(SegmentConfig(scale=0.5)) is not shared_segmenter(SegmentConfig())
