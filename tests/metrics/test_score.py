import numpy as np
import pytest

from hpa_scc.core.errors import InputError
from hpa_scc.metrics.competition import average_precision, score_files, score_rows
from hpa_scc.metrics.leaderboard import leaderboard
from hpa_scc.submission.encode import encode_label_image, encode_mask
from hpa_scc.submission.rows import Prediction, SubmissionRow, read_submission, write_submission

H, W = 20, 20


def _mask(y0, y1, x0, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return encode_mask(m)


A = _mask(0, 10, 0, 10)  # 100 px
B = _mask(10, 20, 10, 20)
A_64 = _mask(0, 8, 0, 8)  # IoU with A = 0.64
A_56 = _mask(0, 8, 0, 7)  # IoU with A = 0.56


def row(image_id, preds):
    return SubmissionRow(image_id, W, H, [Prediction(*p) for p in preds])


def score(sub, sol, **kw):
    return score_rows({r.image_id: r for r in sub}, {r.image_id: r for r in sol}, **kw)


def test_perfect_is_one():
    sol = [row("i", [(0, 1, A), (3, 1, A), (18, 1, B)])]
    assert score(sol, sol).map == pytest.approx(1.0)


def test_iou_just_above_and_below():
    sol = [row("i", [(0, 1, A)])]
    assert score([row("i", [(0, 0.9, A_64)])], sol).map == 1.0
    assert score([row("i", [(0, 0.9, A_56)])], sol).map == 0.0
    assert score([row("i", [(0, 0.9, A_56)])], sol, iou=0.5).map == 1.0


def test_duplicate_detection_is_false_positive():
    sol = [row("i", [(0, 1, A), (0, 1, B)])]
    # ranks: A (tp, 0.9), A again (fp, 0.8), B (tp, 0.7): precision 1, 0.5, 2/3 -> envelope 1, 2/3
    ap = score([row("i", [(0, 0.9, A), (0, 0.8, A), (0, 0.7, B)])], sol).ap[0]
    assert ap == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_unverified_class_ignored_unless_strict():
    sol = [row("i", [(0, 1, A)])]
    sub = [row("i", [(0, 0.5, A), (5, 0.9, A)])]
    result = score(sub, sol)
    assert result.map == 1.0 and result.ap[5] is None and result.n_detections[5] == 0
    # strict: class 5 still has no truth (left out of the mean), but a verified-class FP counts
    sol2 = [row("i", [(0, 1, A)]), row("j", [(5, 1, B)])]
    sub2 = [row("i", [(0, 0.5, A), (5, 0.9, A)]), row("j", [(5, 0.1, B)])]
    assert score(sub2, sol2).ap[5] == 1.0
    assert score(sub2, sol2, strict=True).ap[5] == pytest.approx(0.5)


def test_confidence_order_across_images():
    sol = [row("i", [(2, 1, A)]), row("j", [(2, 1, A)])]
    good = [row("i", [(2, 0.9, A), (2, 0.1, B)]), row("j", [(2, 0.8, A)])]
    bad = [row("i", [(2, 0.2, A), (2, 0.9, B)]), row("j", [(2, 0.1, A)])]
    # B is a false positive only where class 2 is verified (image i)
    assert score(good, sol).ap[2] == pytest.approx(1.0)
    # order: B fp, A tp, A tp -> precision 0, 1/2, 2/3 at recall 0, .5, 1 -> 0.5*2/3 + 0.5*2/3
    assert score(bad, sol).ap[2] == pytest.approx(2 / 3)


def test_classes_without_truth_left_out_and_missing_detections_zero():
    sol = [row("i", [(0, 1, A), (18, 1, B)])]
    result = score([row("i", [(0, 1, A)])], sol)
    assert result.ap[18] == 0.0 and result.ap[1] is None
    assert result.map == pytest.approx(0.5)


def test_negative_scored_like_any_class():
    sol = [row("i", [(18, 1, A)])]
    assert score([row("i", [(18, 0.3, A)])], sol).map == 1.0


def test_detection_takes_best_iou_instance():
    sol = [row("i", [(0, 1, A), (0, 1, A_64)])]  # two overlapping truth cells
    # a detection equal to A_64 has IoU 1 with A_64 and 0.64 with A: takes A_64
    result = score([row("i", [(0, 0.9, A_64), (0, 0.8, A)])], sol)
    assert result.ap[0] == 1.0


def test_errors_missing_image_and_size():
    sol = [row("i", [(0, 1, A)]), row("j", [(0, 1, A)])]
    with pytest.raises(InputError, match="lacks 1 image"):
        score([row("i", [])], sol)
    bad = SubmissionRow("i", W + 1, H, [])
    with pytest.raises(InputError, match="differs from the solution"):
        score_rows({"i": bad, "j": sol[1]}, {r.image_id: r for r in sol})


def test_average_precision_voc():
    assert average_precision(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]), 4) == pytest.approx(0.25 + 0.25 * 2 / 3)


def reference_map(sub, sol, iou=0.6):
    """Straightforward re-implementation: decode every mask, loop in Python."""
    from hpa_scc.submission.encode import decode_mask

    aps = []
    for c in range(19):
        n_gt = sum(p.label == c for r in sol.values() for p in r.predictions)
        if n_gt == 0:
            continue
        dets = []
        for image_id, truth in sol.items():
            gts = [decode_mask(p.token, truth.height, truth.width) for p in truth.predictions if p.label == c]
            if not gts:
                continue
            used = [False] * len(gts)
            mine = sorted([p for p in sub[image_id].predictions if p.label == c], key=lambda p: -p.confidence)
            for p in mine:
                m = decode_mask(p.token, truth.height, truth.width)
                ious = [(m & g).sum() / max((m | g).sum(), 1) for g in gts]
                k = int(np.argmax(ious))
                ok = ious[k] >= iou and not used[k]
                used[k] = used[k] or ok
                dets.append((p.confidence, ok))
        dets.sort(key=lambda d: -d[0])
        tp = np.cumsum([d[1] for d in dets]) if dets else np.array([])
        prec = [t / (i + 1) for i, t in enumerate(tp)]
        rec = [t / n_gt for t in tp]
        ap, prev = 0.0, 0.0
        for i in range(len(dets)):
            if rec[i] > prev:
                ap += (rec[i] - prev) * max(prec[i:])
                prev = rec[i]
        aps.append(ap)
    return float(np.mean(aps))


def test_cross_check_on_synthetic(tiny_data, rng):
    from scipy import ndimage

    from hpa_scc.data.images import read_label_png

    sol = read_submission(tiny_data / "solution.csv")
    sub = {}
    for image_id, truth in sol.items():
        cells = read_label_png(tiny_data / "truth" / f"{image_id}_cells.png")
        eroded = np.where(ndimage.binary_erosion(cells > 0, iterations=int(rng.integers(1, 6))), cells, 0)
        tokens = encode_label_image(eroded.astype(np.uint16))
        preds = [Prediction(int(c), float(rng.random()), tok) for tok in tokens.values() for c in rng.choice(19, 4, replace=False)]
        sub[image_id] = SubmissionRow(image_id, truth.width, truth.height, preds + list(truth.predictions[:2]))
    fast = score_rows(sub, sol).map
    assert 0.0 < fast < 1.0
    assert fast == pytest.approx(reference_map(sub, sol), abs=1e-9)


def test_files_and_leaderboard(tiny_data, tmp_path):
    sol = read_submission(tiny_data / "solution.csv")
    rows = [(r.image_id, r.width, r.height) for r in sol.values()]
    write_submission(tmp_path / "perfect.csv", rows, {k: r.predictions for k, r in sol.items()})
    write_submission(tmp_path / "shuffled.csv", rows,
                     {k: [p._replace(label=(p.label + 1) % 19) for p in r.predictions] for k, r in sol.items()})
    assert score_files(tmp_path / "perfect.csv", tiny_data / "solution.csv").map == 1.0
    (tmp_path / "perfect.cells.csv").write_text("ID,cell_id\n")  # a per-cell table is not a submission
    board = leaderboard(tmp_path, tiny_data / "solution.csv")
    assert [e.name for e in board] == ["perfect.csv", "shuffled.csv"]
    assert board[0].map == 1.0 and board[1].map < 0.5
    assert (tmp_path / ".leaderboard_cache.json").is_file()
    again = leaderboard(tmp_path, tiny_data / "solution.csv")
    assert [(e.name, e.map) for e in again] == [(e.name, e.map) for e in board]
