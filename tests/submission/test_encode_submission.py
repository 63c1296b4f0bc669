import base64
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hpa_scc.core.errors import InputError, SubmissionError
from hpa_scc.data.images import read_label_png
from hpa_scc.data.tables import read_sample_submission
from hpa_scc.submission.encode import decode_mask, empty_mask_token, encode_label_image, encode_mask, token_to_rle
from hpa_scc.submission.rows import (Prediction, format_confidence, read_submission, validate_submission,
                                     write_submission)

PLACEHOLDER = "eNoLCAgIMAEABJkBdQ=="


def test_placeholder_is_empty_2048_mask():
    assert empty_mask_token(2048, 2048) == PLACEHOLDER
    mask = decode_mask(PLACEHOLDER, 2048, 2048)
    assert mask.shape == (2048, 2048) and not mask.any()


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (7, 5), (1728, 1728), (3072, 3072)])
def test_round_trip_special_masks(shape):
    h, w = shape
    cases = [np.zeros(shape, bool), np.ones(shape, bool)]
    one = np.zeros(shape, bool)
    one[h // 2, w // 2] = True
    cases.append(one)
    border = np.zeros(shape, bool)
    border[:, -1] = True
    border[0, :] = True
    cases.append(border)
    for mask in cases:
        assert np.array_equal(decode_mask(encode_mask(mask), h, w), mask)


def test_token_is_official_format():
    from pycocotools import mask as coco

    mask = np.zeros((30, 20), np.uint8)
    mask[3:9, 4:15] = 1
    counts = coco.encode(np.asfortranarray(mask))["counts"]
    assert encode_mask(mask) == base64.b64encode(zlib.compress(counts, 9)).decode()


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 40), st.integers(1, 40))))
def test_round_trip_property(mask):
    assert np.array_equal(decode_mask(encode_mask(mask), *mask.shape), mask)


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 5)))
def test_label_image_bytes_equal_property(labels):
    tokens = encode_label_image(labels)
    assert set(tokens) == set(np.unique(labels)) - {0}
    for cell_id, token in tokens.items():
        assert token == encode_mask(labels == cell_id)


def test_label_image_many_cells(rng):
    labels = np.zeros((300, 200), np.uint16)
    ids = rng.permutation(np.arange(1, 401))
    k = 0
    for y in range(0, 300, 15):
        for x in range(0, 200, 10):
            labels[y:y + 15, x:x + 10] = ids[k]
            k += 1
    tokens = encode_label_image(labels)
    assert len(tokens) == 400
    for cell_id in (1, 255, 256, 400):
        assert tokens[cell_id] == encode_mask(labels == cell_id)


def test_label_image_synthetic(tiny_data):
    path = next((tiny_data / "truth").glob("*_cells.png"))
    labels = read_label_png(path)
    for cell_id, token in encode_label_image(labels).items():
        assert token == encode_mask(labels == cell_id)


@pytest.mark.parametrize("token, match", [("!!!", "base64"), (base64.b64encode(b"xx").decode(), "base64"),
                                          (base64.b64encode(zlib.compress(b"\x01\x02")).decode(), "COCO")])
def test_undecodable_tokens(token, match):
    with pytest.raises(InputError, match=match):
        token_to_rle(token, 10, 10)


def test_token_of_other_size():
    with pytest.raises(InputError, match="not a 20x10 mask"):
        token_to_rle(encode_mask(np.ones((10, 10), bool)), 10, 20)


def test_confidence_format():
    assert format_confidence(1.0) == "1"
    assert format_confidence(0.0) == "0"
    assert format_confidence(0.123456789) == "0.123457"
    assert "e" not in format_confidence(1e-9)


def _small_submission(tmp_path):
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    token = encode_mask(mask)
    rows = [("b", 8, 6), ("a", 8, 6)]
    path = write_submission(tmp_path / "sub.csv", rows, {"b": [Prediction(3, 0.25, token), Prediction(18, 1.0, token)]})
    sample = tmp_path / "sample.csv"
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\nb,8,6,\na,8,6,\n")
    return path, sample, token


def test_writer_reader_round_trip(tmp_path):
    path, sample, token = _small_submission(tmp_path)
    text = path.read_text().splitlines()
    assert text[0] == "ID,ImageWidth,ImageHeight,PredictionString"
    assert text[1] == f"b,8,6,3 0.25 {token} 18 1 {token}"
    assert text[2] == "a,8,6,"
    rows = read_submission(path)
    assert list(rows) == ["b", "a"]
    assert rows["b"].predictions == [Prediction(3, 0.25, token), Prediction(18, 1.0, token)]
    report = validate_submission(path, sample)
    assert report.ok and report.images == 2 and report.cells == 1 and report.triples == 2
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left


@pytest.mark.parametrize(
    "row, match",
    [
        ("b,8,6,3 0.5", "not a multiple of 3"),
        ("b,8,6,19 0.5 TOKEN", "label 19 is outside"),
        ("b,8,6,x 0.5 TOKEN", "label 'x' is not an integer"),
        ("b,8,6,3 high TOKEN", "confidence 'high' is not a number"),
        ("b,8,6,3 1.5 TOKEN", "outside \\[0, 1\\]"),
        ("b,8,6,3 nan TOKEN", "outside \\[0, 1\\]"),
        ("b,8,6,3 0.5 abc$", "base64"),
        ("b,9,6,3 0.5 TOKEN", "not a 9x6 mask"),
        ("b,8,6", "expected 4 columns"),
    ],
)
def test_reader_rejects_malformed_rows(tmp_path, row, match):
    _, _, token = _small_submission(tmp_path)
    path = tmp_path / "bad.csv"
    path.write_text("ID,ImageWidth,ImageHeight,PredictionString\na,8,6,\n" + row.replace("TOKEN", token) + "\n")
    with pytest.raises(SubmissionError, match=f"row 3 \\(ID b\\): .*{match}"):
        read_submission(path)
    report = validate_submission(path)
    assert not report.ok and report.errors[0].startswith("row 3 (ID b):")
    assert (report.rows, report.malformed, report.images) == (2, 1, 1)


def test_validator_ids_and_sizes(tmp_path):
    path, sample, token = _small_submission(tmp_path)
    sample.write_text("ID,ImageWidth,ImageHeight,PredictionString\nb,8,7,\nc,8,6,\n")
    errors = validate_submission(path, sample).errors
    assert any("differs from the sample's 8x7" in e for e in errors)
    assert any("missing ID c" in e for e in errors)
    assert any("(ID a): not in sample.csv" in e for e in errors)
    dup = tmp_path / "dup.csv"
    dup.write_text(path.read_text() + "a,8,6,\n")
    assert any("(ID a): duplicate ID" in e for e in validate_submission(dup).errors)


def test_bad_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,w,h,p\n")
    with pytest.raises(SubmissionError, match="row 1: header"):
        read_submission(path)


def test_synthetic_solution_validates(tiny_data):
    report = validate_submission(tiny_data / "solution.csv", tiny_data / "sample_submission.csv")
    assert report.ok, report.errors
    assert report.images == len(read_sample_submission(tiny_data / "sample_submission.csv"))
