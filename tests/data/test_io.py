import cv2
import numpy as np
import pytest

from hpa_scc.core.errors import InputError
from hpa_scc.data.images import (CHANNELS, image_size, list_image_ids, read_rgby, to_uint8, to_uint16, validate_id,
                                 write_png)
from hpa_scc.data.tables import read_labels, read_sample_submission


def _write_image(folder, image_id, planes, bits=8):
    convert = to_uint16 if bits == 16 else to_uint8
    for plane, channel in zip(planes, CHANNELS):
        write_png(folder / f"{image_id}_{channel}.png", convert(plane))


@pytest.mark.parametrize("bits, tol", [(8, 1 / 255), (16, 1 / 65535)])
def test_read_8_and_16_bit(tmp_path, rng, bits, tol):
    planes = [rng.random((40, 56)).astype(np.float32) for _ in CHANNELS]
    _write_image(tmp_path, "img1", planes, bits)
    rgby = read_rgby(tmp_path, "img1")
    assert rgby.shape == (40, 56, 4) and rgby.dtype == np.float32
    for i in range(4):
        assert np.abs(rgby[..., i] - planes[i]).max() <= tol
    assert image_size(tmp_path, "img1") == (40, 56)


def test_channel_order(tmp_path):
    planes = [np.full((8, 8), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4)]
    _write_image(tmp_path, "x", planes)
    rgby = read_rgby(tmp_path, "x")
    assert np.allclose(rgby[0, 0], [0.1, 0.2, 0.3, 0.4], atol=1 / 255)


def test_tif_and_jpg_layout(tmp_path, rng):
    plane = (rng.random((16, 16)) * 255).astype(np.uint8)
    for channel, ext in zip(CHANNELS, (".tif", ".tif", ".jpg", ".png")):
        cv2.imwrite(str(tmp_path / f"pub_{channel}{ext}"), plane)
    rgby = read_rgby(tmp_path, "pub")
    assert rgby.shape == (16, 16, 4)
    assert np.allclose(rgby[..., 0], plane / 255.0, atol=1e-6)  # TIFF is lossless


def test_missing_channel(tmp_path, rng):
    _write_image(tmp_path, "a", [rng.random((8, 8)) for _ in CHANNELS])
    (tmp_path / "a_yellow.png").unlink()
    with pytest.raises(InputError, match="image a: missing yellow channel"):
        read_rgby(tmp_path, "a")


def test_channels_of_different_sizes(tmp_path, rng):
    _write_image(tmp_path, "a", [rng.random((8, 8)) for _ in CHANNELS])
    write_png(tmp_path / "a_blue.png", to_uint8(rng.random((8, 9))))
    with pytest.raises(InputError, match="image a: blue channel is 9x8 but red is 8x8"):
        read_rgby(tmp_path, "a")


@pytest.mark.parametrize("content", [b"", b"not a png at all", None])
def test_corrupt_or_truncated(tmp_path, rng, content):
    _write_image(tmp_path, "a", [rng.random((64, 64)) for _ in CHANNELS])
    path = tmp_path / "a_green.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if content is None else content)
    with pytest.raises(InputError, match="a_green.png"):
        read_rgby(tmp_path, "a")


def test_non_2d_channel(tmp_path, rng):
    _write_image(tmp_path, "a", [rng.random((8, 8)) for _ in CHANNELS])
    colour = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a_red.png"), colour)
    with pytest.raises(InputError, match="a_red.png is a colour image whose planes differ"):
        read_rgby(tmp_path, "a")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "a\\b", "", "..", ".hidden"])
def test_bad_ids(bad):
    with pytest.raises(InputError, match="invalid image ID"):
        validate_id(bad)


def test_list_ids(tmp_path, rng):
    for name in ("b", "a"):
        _write_image(tmp_path, name, [rng.random((4, 4)) for _ in CHANNELS])
    (tmp_path / "notes.txt").write_text("x")
    assert list_image_ids(tmp_path) == ["a", "b"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("ID,Label\na,1|2\na,3\n", "row 3: duplicate ID a"),
        ("ID,Label\na,1|99\n", "row 2: label 99"),
        ("ID,Label\na,\n", "row 2: empty label"),
        ("ID,Labels\na,1\n", "missing column 'Label'"),
        ("ID,Label\n../x,1\n", "row 2: invalid image ID"),
    ],
)
def test_bad_train_csv(tmp_path, text, match):
    path = tmp_path / "train.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        read_labels(path)


def test_real_csvs(real_data):
    labels = read_labels(real_data / "train.csv")
    assert len(labels) == 21806
    rows = read_sample_submission(real_data / "sample_submission.csv")
    assert len(rows) == 559 and {r.width for r in rows} == {1728, 2048, 3072}


def test_read_every_real_image(real_data):
    ids = list_image_ids(real_data / "images")
    assert len(ids) == 7
    for image_id in ids:
        rgby = read_rgby(real_data / "images", image_id)
        assert rgby.shape[2] == 4 and rgby.shape[0] in (2048, 3072)
        assert 0.0 <= rgby.min() and rgby.max() <= 1.0 and rgby[..., 2].mean() > 0.005


def test_recently_used_drops_the_least_recently_used():
    from hpa_scc.core.memory import RecentlyUsed

    loads = []
    held = RecentlyUsed(2)

    def get(key):
        return held.get(key, lambda: loads.append(key) or key.upper())

    assert [get("a"), get("b"), get("a"), get("c"), get("a"), get("b")] == ["A", "B", "A", "C", "A", "B"]
    assert loads == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came in
