"""Kinds of true cells (the error classes of bench segment) on a hand-made label image."""

import numpy as np

from hpa_scc.metrics.cell_kinds import cell_kinds, found_by_kind, merge_kinds


def scene():
    truth = np.zeros((100, 100), np.uint16)
    truth[0:20, 40:60] = 1  # cut by the top edge
    truth[40:60, 10:30] = 2  # touches cell 3
    truth[40:60, 30:50] = 3
    truth[70:90, 70:90] = 4  # faint, mitotic
    truth[5:35, 70:99] = 5  # large (870 px against a median of 400)
    rgby = np.zeros((100, 100, 4), np.float32)
    rgby[..., 0] = np.where(truth > 0, 0.8, 0.0)
    rgby[truth == 4, 0] = 0.1
    return truth, rgby


def test_each_kind_is_named():
    truth, rgby = scene()
    kinds = cell_kinds(truth, rgby, mitotic={4})
    assert kinds[1] == {"all", "edge"}
    assert kinds[2] == kinds[3] == {"all", "touching"}
    assert kinds[4] == {"all", "faint", "mitotic"}
    assert kinds[5] == {"all", "large"}


def test_recall_and_iou_per_kind():
    truth, rgby = scene()
    pred = truth.copy()
    pred[pred == 4] = 0  # the faint mitotic cell is missed
    pred[40:60, 10:50] = 2  # the touching pair is merged: neither is found at IoU 0.6
    kinds = merge_kinds([found_by_kind(pred, truth, cell_kinds(truth, rgby, {4}))])
    assert kinds["all"]["cells"] == 5 and abs(kinds["all"]["recall"] - 2 / 5) < 1e-9
    assert kinds["touching"]["recall"] == 0 and kinds["faint"]["recall"] == 0 and kinds["edge"]["recall"] == 1
    assert kinds["large"]["mean_iou"] == 1.0


def test_touching_nuclei_are_named_when_the_nuclei_are_given():
    truth, rgby = scene()
    nuclei = np.zeros_like(truth)
    nuclei[45:55, 20:30] = 2  # cells 2 and 3: their nuclei meet on the cells' shared border
    nuclei[45:55, 30:40] = 3
    nuclei[8:15, 45:55] = 1
    kinds = cell_kinds(truth, rgby, {4}, nuclei)
    assert kinds[2] == kinds[3] == {"all", "touching", "touching_nuclei"} and kinds[1] == {"all", "edge"}
    nuclei[45:55, 28:30] = 0  # a gap between the two nuclei: the cells still touch, their nuclei do not
    assert "touching_nuclei" not in cell_kinds(truth, rgby, {4}, nuclei)[2]
    assert all("touching_nuclei" not in k for k in cell_kinds(truth, rgby, {4}).values())
