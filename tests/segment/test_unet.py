"""The `unet` backend: the shipped U-Net's maps in hpacellseg's format, label_cell after it, and
its training command on generated images."""

import cv2
import numpy as np
import pytest

from hpa_scc.core.config_images import SegmentConfig, SynthConfig
from hpa_scc.core.errors import ConfigError, InputError
from hpa_scc.metrics.agreement import f1_score, match_cells
from hpa_scc.segment.maps import maps_from_labels
from hpa_scc.segment.unet import SHIPPED_ONNX, SHIPPED_WEIGHTS, UnetBackend, label_working_maps, probabilities_to_maps
from hpa_scc.synth.appearances import APPEARANCES
from hpa_scc.synth.draw import generate_image

UNET = SegmentConfig(backend="unet")


def test_shipped_weights_are_in_the_package_and_small():
    assert SHIPPED_WEIGHTS.is_file() and SHIPPED_ONNX.is_file()
    assert SHIPPED_WEIGHTS.stat().st_size + SHIPPED_ONNX.stat().st_size <= 10_000_000


def test_keras_weights_and_onnx_give_the_same_cells():
    image = generate_image(105, 512, SynthConfig())
    onnx_cells = UnetBackend(UNET)(image.rgby).cells
    keras_cells = UnetBackend(SegmentConfig(backend="unet", unet_weights=str(SHIPPED_WEIGHTS)))(image.rgby).cells
    assert np.mean(onnx_cells == keras_cells) > 0.999


def test_missing_weights_are_one_clear_line(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        UnetBackend(SegmentConfig(backend="unet", unet_weights=str(tmp_path / "none.weights.h5")))


def test_probabilities_become_hpacellseg_maps():
    probs = np.zeros((8, 8, 6), np.float32)
    probs[..., 0] = probs[..., 3] = 1.0  # all background
    probs[2:6, 2:6, :3] = (0.0, 0.25, 0.75)
    nuclei, cells = probabilities_to_maps(probs)
    assert nuclei.shape == cells.shape == (8, 8, 3) and nuclei.dtype == np.uint8
    assert nuclei[4, 4, 2] == 191 and nuclei[4, 4, 1] == 64 and not nuclei[..., 0].any()
    assert not cells[..., 1:].any()


def test_unet_finds_the_cells_of_generated_images():
    backend = UnetBackend(UNET)
    totals = np.zeros(3, int)
    for seed, size in ((101, 512), (102, 640)):
        image = generate_image(seed, size, SynthConfig())
        seg = backend(image.rgby)
        assert seg.cells.shape == (size, size) and seg.cells.dtype == np.uint16
        assert np.all(seg.cells[seg.nuclei > 0] == seg.nuclei[seg.nuclei > 0])
        totals += match_cells(seg.cells, image.cells)
    assert f1_score(*totals.tolist())[2] >= 0.8


def test_map_smoothing_evens_the_maps_and_keeps_the_cells():
    image = generate_image(104, 512, SynthConfig())
    raw = UnetBackend(SegmentConfig(backend="unet", unet_map_smooth=0.0)).working_maps(image.rgby)
    smooth = UnetBackend(SegmentConfig(backend="unet", unet_map_smooth=1.5)).working_maps(image.rgby)

    def roughness(pred):  # mean |step| between neighbouring pixels of the border and interior maps
        values = pred[..., 1:].astype(float)
        return np.abs(np.diff(values, axis=0)).mean() + np.abs(np.diff(values, axis=1)).mean()

    for before, after in zip(raw, smooth):
        assert after.shape == before.shape and after.dtype == np.uint8
        assert roughness(after) < 0.9 * roughness(before)
    seg = label_working_maps(*smooth, (512, 512))
    assert f1_score(*match_cells(seg.cells, image.cells))[2] >= 0.8
    with pytest.raises(ConfigError, match="unet_map_smooth"):
        SegmentConfig(unet_map_smooth=-1.0)


def test_neck_split_finds_touching_nuclei_of_a_packed_field_apart():
    """On a confluent generated field (APPEARANCES["packed"]) the U-Net's maps join touching nuclei;
    the neck split parts them, so more cells match the truth; on loose cells it changes nothing."""
    packed = SynthConfig(**APPEARANCES["packed"])
    joined, split = np.zeros(3, int), np.zeros(3, int)
    for seed in (1, 2, 3):
        image = generate_image(seed, 512, packed)
        maps = UnetBackend(UNET).working_maps(image.rgby)
        joined += match_cells(label_working_maps(*maps, (512, 512), 0.0).cells, image.cells)
        split += match_cells(label_working_maps(*maps, (512, 512), 0.5).cells, image.cells)
    assert split[0] > joined[0] and f1_score(*split.tolist())[2] > f1_score(*joined.tolist())[2]
    loose = generate_image(101, 512, SynthConfig())
    maps = UnetBackend(UNET).working_maps(loose.rgby)
    assert np.array_equal(label_working_maps(*maps, (512, 512), 0.0).cells, label_working_maps(*maps, (512, 512), 0.5).cells)
    assert UNET.unet_neck_split == 0.5
    with pytest.raises(ConfigError, match="unet_neck_split"):
        SegmentConfig(unet_neck_split=1.0)


def test_ideal_maps_of_a_frame_at_any_side_give_its_cells_back():
    """The post-processing the U-Net's maps go through: areas follow the frame, not the px."""
    image = generate_image(103, 512, SynthConfig())
    for side in (256, 512):
        maps = [cv2.resize(m, (side, side), interpolation=cv2.INTER_AREA)
                for m in maps_from_labels(image.cells, image.nuclei)]
        seg = label_working_maps(*maps, (512, 512))
        assert seg.cells.shape == (512, 512)
        assert f1_score(*match_cells(seg.cells, image.cells))[2] >= 0.9


@pytest.mark.slow
def test_train_segmenter_writes_weights_the_backend_loads(tmp_path, capsys):
    from hpa_scc.app.cli import main

    out = tmp_path / "tiny.weights.h5"
    assert main(["train-segmenter", "--out", str(out), "--images", "4", "--steps", "8", "--workers", "1"]) in (0, None)
    assert out.is_file() and (tmp_path / "tiny.onnx").is_file() and not list(tmp_path.glob(".*"))
    backend = UnetBackend(SegmentConfig(backend="unet", unet_weights=str(tmp_path / "tiny.onnx")))
    assert backend(generate_image(104, 384, SynthConfig()).rgby).cells.shape == (384, 384)
    assert main(["train-segmenter", "--out", str(tmp_path / "bad.h5"), "--images", "4", "--steps", "8"]) == 2
