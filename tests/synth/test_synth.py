import dataclasses
import json

import cv2
import numpy as np

from hpa_scc.core.classes import NEGATIVE
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.data.images import list_image_ids, read_label_png, read_rgby
from hpa_scc.data.tables import read_cell_labels, read_labels, read_sample_submission
from hpa_scc.submission.encode import decode_mask
from hpa_scc.submission.rows import read_submission
from hpa_scc.synth.dataset import generate_dataset
from hpa_scc.synth.draw import generate_image


def test_layout_and_round_trip(tiny_data, tiny_synth_config):
    train_ids = list_image_ids(tiny_data / "train")
    test_ids = list_image_ids(tiny_data / "test")
    assert len(train_ids) == 4 and len(test_ids) == 3
    labels = read_labels(tiny_data / "train.csv")
    assert sorted(labels) == train_ids
    cell_labels = read_cell_labels(tiny_data / "cell_labels.csv")
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert {m["bits"] for m in manifest["images"]} <= {8, 16}
    for image_id in train_ids:
        rgby = read_rgby(tiny_data / "train", image_id)
        cells = read_label_png(tiny_data / "truth" / f"{image_id}_cells.png")
        nuclei = read_label_png(tiny_data / "truth" / f"{image_id}_nuclei.png")
        assert cells.dtype == np.uint16 and cells.shape == rgby.shape[:2]
        ids = set(np.unique(cells)) - {0}
        assert ids == set(range(1, len(ids) + 1))
        assert set(np.unique(nuclei)) - {0} <= ids
        assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])  # nuclei lie in their cells
        per_cell = {cid: labs for (iid, cid), labs in cell_labels.items() if iid == image_id}
        assert set(per_cell) == ids
        union = {c for labs in per_cell.values() for c in labs if c != NEGATIVE}
        assert set(labels[image_id]) == (union or {NEGATIVE})  # weak label = union of cell labels
        assert rgby[..., 2][nuclei > 0].mean() > 2 * rgby[..., 2][cells == 0].mean()  # nuclei are blue


def test_solution_matches_truth(tiny_data):
    solution = read_submission(tiny_data / "solution.csv")
    sample = read_sample_submission(tiny_data / "sample_submission.csv")
    assert [r.image_id for r in sample] == list(solution)
    cell_labels = read_cell_labels(tiny_data / "cell_labels.csv")
    for image_id, row in solution.items():
        cells = read_label_png(tiny_data / "truth" / f"{image_id}_cells.png")
        expected = sum(len(l) for (i, _), l in cell_labels.items() if i == image_id)
        assert len(row.predictions) == expected
        first = row.predictions[0]
        mask = decode_mask(first.token, row.height, row.width)
        cell_id = int(np.bincount(cells[mask]).argmax())
        assert np.array_equal(mask, cells == cell_id)
        assert first.label in cell_labels[(image_id, cell_id)]


def test_deterministic_across_workers(tmp_path):
    cfg = SynthConfig(n_train=2, n_test=1, sizes=(192,), seed=3, workers=1)
    generate_dataset(cfg, tmp_path / "a", progress=False, workers=1)
    generate_dataset(cfg, tmp_path / "b", progress=False, workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) > 10
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_patterns_differ_between_classes():
    cfg = SynthConfig(p_express=1.0, labels_per_image=(1.0,), cells_min=10, cells_max=10)
    greens = {}  # class -> green brightness in nuclei / in cytoplasm
    for seed in range(40):
        image = generate_image(seed, 256, cfg)
        cls = image.image_labels[0]
        if cls not in greens and cls != NEGATIVE:
            g = image.rgby[..., 1]
            greens[cls] = (g[image.nuclei > 0].mean() + 1e-6) / (g[(image.cells > 0) & (image.nuclei == 0)].mean() + 1e-6)
    assert 0 in greens and greens[0] > 1.5  # nucleoplasm: nuclear
    if 16 in greens:
        assert greens[16] < 0.7  # cytosol: cytoplasmic


def test_sizes_and_border_and_counts():
    cfg = SynthConfig(cells_min=20, cells_max=20)
    image = generate_image(11, 512, cfg)
    cells = image.cells
    assert cells.max() >= 8
    border = np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]])
    assert (border > 0).any()  # cells are cut by the border
    # touching cells: some pixel has a different non-zero neighbour
    assert ((cells[:, 1:] != cells[:, :-1]) & (cells[:, 1:] > 0) & (cells[:, :-1] > 0)).any()


def test_edge_fade_dims_cell_margins_and_keeps_the_truth():
    plain = generate_image(4, 384, SynthConfig())
    faded = generate_image(4, 384, SynthConfig(edge_fade=0.5))
    assert (plain.cells == faded.cells).all() and plain.cell_labels == faded.cell_labels
    cells = plain.cells > 0
    inner = cv2.erode(cells.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=12) > 0
    margin = cells & ~(cv2.erode(cells.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=3) > 0)
    for channel in (0, 3):  # red and yellow: the margins lose more than the deep insides
        ratio = faded.rgby[..., channel] / np.maximum(plain.rgby[..., channel], 1e-3)
        assert np.median(ratio[margin]) < 0.6 * np.median(ratio[inner])
    assert np.allclose(plain.rgby[..., 2], faded.rgby[..., 2])  # the nuclei are as they were


def _touching_pairs(labels: np.ndarray) -> int:
    """Pixels where two different objects of a label image meet (right or down neighbour)."""
    pairs = 0
    for a, b in ((labels[:, 1:], labels[:, :-1]), (labels[1:], labels[:-1])):
        pairs += int(((a != b) & (a > 0) & (b > 0)).sum())
    return pairs


def test_packing_makes_neighbouring_nuclei_touch_and_alignment_turns_cells_alike():
    loose = [generate_image(s, 512, SynthConfig(cells_min=30, cells_max=30)) for s in range(3)]
    packed_cfg = SynthConfig(cells_min=30, cells_max=30, spacing=0.8, nucleus_ratio=0.55, nucleus_elongation=0.9)
    packed = [generate_image(s, 512, packed_cfg) for s in range(3)]
    assert sum(_touching_pairs(im.nuclei) for im in loose) < sum(_touching_pairs(im.nuclei) for im in packed)
    assert sum(im.cells.max() for im in packed) > sum(im.cells.max() for im in loose)  # more cells fit

    def orientation_spread(image) -> float:
        """Circular spread (0 = all alike, 1 = uniform) of the long axes of the elongated nuclei."""
        angles = []
        for cell_id in range(1, int(image.nuclei.max()) + 1):
            ys, xs = np.nonzero(image.nuclei == cell_id)
            if len(ys) < 50:
                continue
            cov = np.cov(np.stack([xs, ys]).astype(float))
            values, vectors = np.linalg.eigh(cov)
            if values[1] > 1.5 * values[0]:
                angles.append(np.arctan2(vectors[1, 1], vectors[0, 1]))
        doubled = np.exp(2j * np.asarray(angles))
        return 1.0 - abs(doubled.mean())

    free = generate_image(5, 512, SynthConfig(cells_min=20, cells_max=20, nucleus_elongation=0.9))
    aligned = generate_image(5, 512, SynthConfig(cells_min=20, cells_max=20, nucleus_elongation=0.9, alignment=1.0))
    assert orientation_spread(aligned) < 0.5 * orientation_spread(free)


def test_contact_seam_darkens_where_nuclei_and_cells_touch_and_keeps_the_truth():
    packed = SynthConfig(cells_min=30, cells_max=30, spacing=0.8, nucleus_ratio=0.55, nucleus_elongation=0.9, noise=0.0)
    plain = generate_image(2, 512, packed)
    seamed = generate_image(2, 512, dataclasses.replace(packed, contact_seam=8.0))
    assert np.array_equal(plain.cells, seamed.cells) and np.array_equal(plain.nuclei, seamed.nuclei)
    for labels, channel in ((plain.nuclei, 2), (plain.cells, 0)):
        meet = np.zeros(labels.shape, bool)
        meet[:, 1:] = (labels[:, 1:] != labels[:, :-1]) & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
        assert meet.sum() > 20
        inside = (labels > 0) & ~cv2.dilate(meet.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        ratio = seamed.rgby[..., channel] / np.maximum(plain.rgby[..., channel], 1e-3)
        assert np.median(ratio[meet]) < 0.6 and np.median(ratio[inside]) > 0.97
