"""hpacellseg's post-processing written anew: the same labels as the original on its fixtures, a fast
mode that agrees with it, and a round trip of the real reference masks through hpacellseg's maps."""

from pathlib import Path

import cv2
import numpy as np
import pytest

import hpa_scc
from hpa_scc.core.errors import InputError
from hpa_scc.data.images import list_image_ids, read_label_png
from hpa_scc.metrics.agreement import cell_agreement
from hpa_scc.segment.label_cell import label_cell, split_at_necks
from hpa_scc.segment.maps import maps_from_labels, nucleus_cores

FIXTURES = Path(__file__).parent / "fixtures" / "label_cell"


def fixture(name: str) -> dict:
    """Maps made by fixtures/label_cell/make_maps.py and the labels hpacellseg's own label_cell gave."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", ["synth_640", "border_wrap", "grid_300"])
def test_exact_mode_gives_the_original_labels(name):
    f = fixture(name)
    nuclei, cells = label_cell(f["nuclei_pred"], f["cell_pred"], mode="exact")
    assert cells.max() > 0
    np.testing.assert_array_equal(cells, f["cells"])
    np.testing.assert_array_equal(nuclei, f["nuclei"])


def test_more_than_255_cells_wrap_in_exact_mode_only_when_asked():
    f = fixture("grid_300")
    assert len(np.unique(f["cells"])) - 1 < 300  # the original's uint8 labels lose a cell of the 300
    _, cells = label_cell(f["nuclei_pred"], f["cell_pred"], mode="exact", wrap_labels=False)
    assert len(np.unique(cells)) - 1 == 300


@pytest.mark.parametrize("name, min_iou", [("synth_640", 0.97), ("grid_300", 0.95)])  # grid: 90 px cells, 1 px = 4 %
def test_fast_mode_agrees_with_exact(name, min_iou):
    f = fixture(name)
    _, cells = label_cell(f["nuclei_pred"], f["cell_pred"], mode="fast", wrap_labels=False)
    exact = label_cell(f["nuclei_pred"], f["cell_pred"], mode="exact", wrap_labels=False)[1]
    agreement = cell_agreement(cells, exact)
    assert agreement["f1"] >= 0.99 and agreement["mean_iou"] >= min_iou, agreement


def test_the_top_level_name_and_bad_maps():
    f = fixture("synth_640")
    assert hpa_scc.label_cell is label_cell
    with pytest.raises(InputError, match="uint8"):
        label_cell(f["nuclei_pred"] / 255.0, f["cell_pred"] / 255.0)
    with pytest.raises(InputError, match="differ in shape"):
        label_cell(f["nuclei_pred"], f["cell_pred"][:-1])
    with pytest.raises(InputError, match="mode"):
        label_cell(f["nuclei_pred"], f["cell_pred"], mode="quick")


def test_maps_from_labels_have_hpacellseg_layout():
    cells = np.zeros((400, 400), np.uint16)
    cells[50:250, 50:250], cells[50:250, 250:390] = 1, 2
    nuclei = nucleus_cores(cells)
    assert set(np.unique(nuclei)) == {0, 1, 2} and np.all((nuclei == 0) | (nuclei == cells))
    nuclei_pred, cell_pred = maps_from_labels(cells, nuclei)
    assert nuclei_pred.dtype == cell_pred.dtype == np.uint8 and cell_pred.shape == (400, 400, 3)
    assert cell_pred[..., 0].max() == 0
    assert cell_pred[150, 150, 2] == 255 and cell_pred[150, 150, 1] == 0  # deep inside a cell: interior
    assert cell_pred[150, 250, 1] > 128 > cell_pred[150, 250, 2]  # the shared border: border
    assert cell_pred[10, 10].max() == 0  # background


@pytest.mark.parametrize("mode", ["fast", pytest.param("exact", marks=pytest.mark.slow)])
def test_round_trip_of_the_real_reference_masks(real_data, mode):
    """Maps derived from hpacellseg's masks of the seven real images give those masks back."""
    for image_id in list_image_ids(real_data / "images"):
        reference = read_label_png(real_data / "hpacellseg_masks" / f"{image_id}_predictedmask.png")
        _, cells = label_cell(*maps_from_labels(reference), mode=mode)
        agreement = cell_agreement(cells, reference)
        assert agreement["f1"] >= 0.98, (image_id, agreement)


def _ellipse(shape, center, axes, angle=0.0):
    canvas = np.zeros(shape, np.uint8)
    cv2.ellipse(canvas, center, axes, angle, 0, 360, 1, -1)
    return canvas > 0


def test_split_at_necks_parts_joined_nuclei_and_keeps_ovals_and_beans_whole():
    shape = (200, 300)
    joined = _ellipse(shape, (90, 100), (50, 30)) | _ellipse(shape, (190, 100), (50, 30))  # two ovals, a 20 px wide waist
    oval = _ellipse(shape, (150, 100), (90, 40), 20)
    bean = _ellipse(shape, (150, 100), (80, 45)) & ~_ellipse(shape, (150, 175), (40, 40))  # a dent of 1/3 the width
    split = split_at_necks(joined.astype(np.int32), 0.5, 100)
    assert split.max() == 2 and (split > 0).sum() == joined.sum()  # every px kept, in two nuclei
    left, right = (split == split[100, 90]), (split == split[100, 190])
    assert split[100, 90] != split[100, 190] and abs(int(left.sum()) - int(right.sum())) < 0.1 * joined.sum()
    for whole in (oval, bean):
        assert split_at_necks(whole.astype(np.int32), 0.5, 100).max() == 1
    labels = np.zeros(shape, np.int32)
    labels[oval] = 7  # several nuclei: each is split or kept on its own, labels renumbered 1..N
    labels[:, 250:][_ellipse(shape, (275, 100), (20, 60))[:, 250:]] = 9
    both = split_at_necks(labels, 0.5, 100)
    assert set(np.unique(both)) == {0, 1, 2} and np.array_equal(both > 0, labels > 0)
