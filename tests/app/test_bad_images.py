"""Bad image files through the real CLI: each is named, the others are done; odd images give correct results."""


import numpy as np
import pytest
from helpers import SETTINGS, cli, failure_lines, grid_of_cells, one_line_error, synthetic_rgby, write_image

from hpa_scc.data.images import read_label_png, write_png


def _break_missing(folder):
    (folder / "b_bad_yellow.png").unlink()
    return ["b_bad", "missing yellow channel"]


def _break_sizes(folder):
    write_png(folder / "b_bad_blue.png", np.zeros((256, 200), np.uint8))
    return ["b_bad", "blue channel is 200x256 but red is 256x256"]


def _break_corrupt(folder):
    (folder / "b_bad_green.png").write_bytes(b"this is not a PNG file")
    return ["b_bad", "b_bad_green.png", "not a readable image"]


def _break_truncated(folder):
    path = folder / "b_bad_red.png"
    path.write_bytes(path.read_bytes()[:300])
    return ["b_bad", "b_bad_red.png", "corrupt or truncated"]


@pytest.mark.parametrize("damage", [_break_missing, _break_sizes, _break_corrupt, _break_truncated],
                         ids=["missing-channel", "channel-sizes", "corrupt-png", "truncated-png"])
def test_bad_image_file_is_named_and_the_others_are_done(tmp_path, capsys, damage):
    images = tmp_path / "images"
    write_image(images, "a_good", synthetic_rgby(1))
    write_image(images, "b_bad", synthetic_rgby(2))
    write_image(images, "c_good", synthetic_rgby(3))
    fragments = damage(images)
    code, _, err = cli(capsys, "segment", "--images", images, "--out", tmp_path / "masks", "--workers", 1, "--quiet")
    assert code == 1
    failure_lines(err, 3, tuple(fragments))
    for good in ("a_good", "c_good"):  # before and after the bad image: both done
        assert (tmp_path / "masks" / f"{good}_cells.png").is_file()
    assert not list((tmp_path / "masks").glob("b_bad*")) and not list((tmp_path / "masks").glob(".*tmp*"))

    code, _, err = cli(capsys, "segment", "--images", images, "--out", tmp_path / "fast", "--workers", 1, "--quiet",
                       "--fail-fast")
    assert code == 2
    one_line_error(err, *fragments)
    assert (tmp_path / "fast" / "a_good_cells.png").is_file() and not (tmp_path / "fast" / "c_good_cells.png").exists()


def test_odd_images_give_correct_results_end_to_end(tiny_run, tmp_path, capsys):
    """Empty image, image without nuclei, non-square image, >255 cells, 8- and 16-bit in one folder."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    odd = {
        "empty": (np.zeros((256, 256, 4), np.float32), 8),
        "no_nuclei": (np.concatenate([synthetic_rgby(3)[..., :2], np.zeros((256, 256, 1), np.float32),
                                      synthetic_rgby(3)[..., 3:]], axis=-1), 8),
        "wide": (synthetic_rgby(4, 384)[:256], 16),
        "many": (grid_of_cells(), 8),
        "same8": (synthetic_rgby(5), 8),
        "same16": (synthetic_rgby(5), 16),
    }
    for image_id, (rgby, bits) in odd.items():
        write_image(images, image_id, rgby, bits)
    # the classical segmenter at full scale: the grid's 300 cells of 40 px are below the U-Net's 1/4-frame view
    grid = ["--set", "segment.backend=classical", "--set", "segment.nucleus_min_area=300", "--set", "segment.cell_min_area=600",
            "--set", "segment.scale=1.0"]
    code, out, _ = cli(capsys, "segment", "--images", images, "--out", masks, "--workers", 1, "--quiet", *grid)
    assert code == 0
    cells = {i: read_label_png(masks / f"{i}_cells.png") for i in odd}
    assert cells["empty"].max() == 0 and cells["no_nuclei"].max() == 0
    assert cells["wide"].shape == (256, 384) and cells["wide"].max() > 0
    assert cells["many"].dtype == np.uint16 and cells["many"].max() == 300
    from hpa_scc.metrics.agreement import match_cells

    tp, n8, n16 = match_cells(cells["same8"], cells["same16"])  # 16-bit rounding moves a few border pixels only
    assert tp == n8 == n16 and np.mean(cells["same8"] == cells["same16"]) > 0.99

    sample = tmp_path / "sample.csv"
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\n" + "".join(
        f"{i},{rgby.shape[1]},{rgby.shape[0]},\n" for i, (rgby, _) in odd.items()))
    out_csv = tmp_path / "sub.csv"
    code, out, err = cli(capsys, "predict", "--model", tiny_run["run"], "--images", images, "--sample", sample,
                         "--out", out_csv, "--masks", masks, "--quiet", *SETTINGS, *grid)
    assert code == 0, err
    from hpa_scc.submission.rows import read_submission

    rows = read_submission(out_csv)
    assert rows["empty"].predictions == [] and rows["no_nuclei"].predictions == []
    assert (rows["wide"].width, rows["wide"].height) == (384, 256) and rows["wide"].predictions
    assert len({p.token for p in rows["many"].predictions}) == 300
