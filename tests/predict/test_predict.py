"""Per-cell inference: streaming order, engines, blending, resume, submission output."""

import json

import numpy as np
import pytest
from conftest import TINY_RUN_SETTINGS

from hpa_scc.core.classes import NEGATIVE, NUM_CLASSES
from hpa_scc.core.config import load_config
from hpa_scc.core.config_learning import PredictConfig
from hpa_scc.core.errors import BatchFailures, InputError
from hpa_scc.core.layout import journal_path
from hpa_scc.data.images import image_size, list_image_ids
from hpa_scc.model.engines import KerasEngine, OnnxEngine
from hpa_scc.predict.batching import score_stream
from hpa_scc.predict.blend import blend
from hpa_scc.predict.run_settings import read_run_settings
from hpa_scc.predict.stream import PrepareSpec, prepare_image, prepared_stream
from hpa_scc.predict.submit import predict_submission
from hpa_scc.submission.rows import read_submission


def _spec(tiny_run, split="test", whole=True):
    settings = read_run_settings(tiny_run["run"])
    return PrepareSpec(str(tiny_run["data"] / split), str(tiny_run["masks"]), tiny_run["cfg"].segment,
                       settings.crops, settings.size, settings.channels, settings.size if whole else None)


def test_stream_maps_every_cell_of_images_of_different_sizes_back_to_its_row(tiny_run):
    ids = list_image_ids(tiny_run["data"] / "train") + list_image_ids(tiny_run["data"] / "test")
    assert len({image_size(tiny_run["data"] / "train", i) for i in list_image_ids(tiny_run["data"] / "train")}) > 1
    spec_train, spec_test = _spec(tiny_run, "train"), _spec(tiny_run, "test")
    prepared = [prepare_image(spec_train if (tiny_run["data"] / "train" / f"{i}_red.png").exists() else spec_test, i)
                for i in ids]
    engine = KerasEngine(tiny_run["run"] / "model.keras")
    scored = list(score_stream(iter(prepared), engine, batch_size=7))  # 7 does not divide any cell count
    assert [s.image.image_id for s in scored] == ids
    for s in scored:
        assert s.cell_probs.shape == (len(s.image.cell_ids), NUM_CLASSES) and len(s.image.cell_ids) > 0
        alone = engine(np.concatenate([s.image.crops, s.image.whole[None]]).astype(np.float32))
        np.testing.assert_allclose(s.cell_probs, alone[:-1], atol=1e-5)
        np.testing.assert_allclose(s.image_probs, alone[-1], atol=1e-5)


def test_worker_processes_keep_the_order(tiny_run):
    spec = _spec(tiny_run, whole=False)
    ids = list_image_ids(tiny_run["data"] / "test")
    inline = [p.image_id for p in prepared_stream(ids, spec, workers=0, prefetch=2)]
    pooled = list(prepared_stream(ids, spec, workers=2, prefetch=2))
    assert [p.image_id for p in pooled] == inline == ids
    assert all(p.whole is None and len(p.tokens) == len(p.cell_ids) for p in pooled)


@pytest.mark.slow
def test_onnx_export_agrees_with_keras(tiny_run, tmp_path):
    import shutil

    from hpa_scc.model.export import export_onnx

    run = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run)
    info = export_onnx(run)
    assert info["max_abs_diff"] <= 1e-5 and (run / "model.onnx").is_file()
    crops = prepare_image(_spec(tiny_run), list_image_ids(tiny_run["data"] / "test")[0]).crops.astype(np.float32)
    keras_out, onnx_out = KerasEngine(run / "model.keras")(crops), OnnxEngine(run)(crops)
    assert np.abs(keras_out - onnx_out).max() <= 1e-5
    (run / "model.keras").write_bytes((run / "model.keras").read_bytes() + b"\0")  # a changed model: stale export
    with pytest.raises(InputError, match="export"):
        OnnxEngine(run)


def test_blend_arithmetic():
    cell = np.array([[0.8, 0.2] + [0.1] * 17, [0.4, 0.6] + [0.0] * 17])
    image = np.array([0.5, 0.4] + [0.2] * 17)
    linear = blend(cell, image, PredictConfig(cell_weight=0.7))
    np.testing.assert_allclose(linear[0, :2], [0.7 * 0.8 + 0.3 * 0.5, 0.7 * 0.2 + 0.3 * 0.4])
    np.testing.assert_allclose(blend(cell, image, PredictConfig(cell_weight=0.0)), np.tile(image, (2, 1)))
    np.testing.assert_allclose(blend(cell, image, PredictConfig(cell_weight=1.0)), cell)
    product = blend(cell, image, PredictConfig(cell_weight=0.5, blend="product"))
    np.testing.assert_allclose(product[1, 1], np.sqrt(0.6 * 0.4))
    derived = blend(cell, image, PredictConfig(cell_weight=1.0, negative="derived"))
    np.testing.assert_allclose(derived[:, NEGATIVE], [0.2 * 0.8 * 0.9 ** 16, 0.6 * 0.4])  # none of the 18
    by_max = blend(cell, image, PredictConfig(cell_weight=1.0, negative="derived_max"))
    np.testing.assert_allclose(by_max[:, NEGATIVE], [1 - 0.8, 1 - 0.6])
    np.testing.assert_allclose(derived[:, :NEGATIVE], cell[:, :NEGATIVE])  # the other labels untouched


def test_others_mean_and_cell_rules():
    from hpa_scc.predict.blend import cell_rules, image_level

    cell = np.random.default_rng(0).uniform(size=(4, 19))
    others = image_level(cell, None, "others_mean")
    np.testing.assert_allclose(others[1], cell[[0, 2, 3]].mean(axis=0))
    np.testing.assert_allclose(image_level(cell[:1], None, "others_mean"), cell[:1])  # a lone cell: its own
    final = blend(cell, others, PredictConfig(cell_weight=0.7, image_score="others_mean"))
    np.testing.assert_allclose(final[2], 0.7 * cell[2] + 0.3 * cell[[0, 1, 3]].mean(axis=0))
    record = {"height": 100, "width": 100, "boxes": [[0, 10, 20, 30], [40, 40, 60, 60], [50, 80, 70, 100], [30, 30, 50, 50]],
              "blue": [0.5, 0.5, 0.5, 0.05]}
    ruled = cell_rules(cell, record, PredictConfig(border_weight=0.5, faint_weight=0.25))
    np.testing.assert_allclose(ruled[:, 0] / cell[:, 0], [0.5, 1.0, 0.5, 0.25])
    np.testing.assert_allclose(cell_rules(cell, record, PredictConfig()), cell)


def test_dihedral_tta_averages_all_eight_views():
    from hpa_scc.model.engines import with_tta

    batch = np.random.default_rng(1).uniform(size=(2, 5, 5, 1)).astype(np.float32)
    corner = lambda b: b[:, 0, :2, 0]  # noqa: E731 - depends on orientation
    views = [np.rot90(batch, k, axes=(1, 2)) for k in range(4)]
    views += [v[:, :, ::-1] for v in views]
    np.testing.assert_allclose(with_tta(corner, rot90=True)(batch), np.mean([corner(v) for v in views], axis=0), rtol=1e-6)
    assert not np.allclose(with_tta(corner, rot90=True)(batch), with_tta(corner)(batch))


def _predict(tiny_run, out, extra=(), **kwargs):
    cfg = load_config(None, TINY_RUN_SETTINGS + list(extra))
    data = tiny_run["data"]
    return predict_submission(cfg, tiny_run["run"], data / "test", data / "sample_submission.csv", out,
                              masks=tiny_run["masks"], progress=False, **kwargs)


def test_submission_has_every_cell_and_label_and_a_cell_table(tiny_run, tmp_path):
    out = tmp_path / "sub.csv"
    result = _predict(tiny_run, out)
    rows = read_submission(out)
    table = (tmp_path / "sub.cells.csv").read_text().splitlines()
    assert len(table) - 1 == result["cells"]
    for image_id, row in rows.items():
        cells = {p.token for p in row.predictions}
        assert len(row.predictions) == NUM_CLASSES * len(cells)
    first = table[1].split(",")
    assert len(first) == 6 + NUM_CLASSES and all(0.0 <= float(v) <= 1.0 for v in first[6:])
    assert not journal_path(out).exists()
    pruned = _predict(tiny_run, tmp_path / "pruned.csv", ["predict.min_confidence=0.5"])
    assert pruned["cells"] == result["cells"]
    assert sum(len(r.predictions) for r in read_submission(tmp_path / "pruned.csv").values()) < \
        sum(len(r.predictions) for r in rows.values())


@pytest.mark.slow
def test_resume_after_a_crash_gives_the_same_file(tiny_run, tmp_path):
    reference = tmp_path / "reference.csv"
    _predict(tiny_run, reference)
    data = tiny_run["data"]
    ids = [line.split(",")[0] for line in (data / "sample_submission.csv").read_text().splitlines()[1:]]
    # A crash after the first image: the journal holds it and a torn, half-written second line.
    out = tmp_path / "resumed.csv"
    spec = _spec(tiny_run)
    engine = KerasEngine(tiny_run["run"] / "model.keras")
    first = next(score_stream(prepared_stream(ids[:1], spec, 0, 1), engine, 8))
    from hpa_scc.predict.journal import Journal, journal_key, journal_record

    cfg = load_config(None, TINY_RUN_SETTINGS)
    key = journal_key(tiny_run["run"], read_run_settings(tiny_run["run"]), cfg, "keras", str(tiny_run["masks"]))
    journal = Journal(journal_path(out), key)
    journal.append(journal_record(first))
    journal.handle.write('{"id": "' + ids[1] + '", "cell"')
    journal.close()
    result = _predict(tiny_run, out)
    assert result["new_images"] == len(ids) - 1
    assert out.read_bytes() == reference.read_bytes()
    assert (tmp_path / "resumed.cells.csv").read_bytes() == (tmp_path / "reference.cells.csv").read_bytes()


def test_journal_of_other_settings_is_refused(tiny_run, tmp_path):
    out = tmp_path / "sub.csv"
    journal_path(out).write_text(json.dumps({"key": "something else"}) + "\n")
    with pytest.raises(InputError, match="another model or settings"):
        _predict(tiny_run, out)
    _predict(tiny_run, out, force=True)
    assert out.is_file()


def test_bad_inputs_name_the_problem(tiny_run, tmp_path):
    data = tiny_run["data"]
    sample = tmp_path / "sample.csv"
    text = (data / "sample_submission.csv").read_text()
    sample.write_text(text + "not-an-image,512,512\n")
    cfg = load_config(None, TINY_RUN_SETTINGS)
    with pytest.raises(BatchFailures, match="1 of 4 images failed") as failed:
        predict_submission(cfg, tiny_run["run"], data / "test", sample, tmp_path / "x.csv", progress=False)
    assert [f[0] for f in failed.value.failures] == ["not-an-image"] and not (tmp_path / "x.csv").exists()
    with pytest.raises(InputError, match="not-an-image"):
        predict_submission(cfg, tiny_run["run"], data / "test", sample, tmp_path / "x.csv", progress=False,
                           fail_fast=True)
    lines = text.splitlines()
    image_id, width, height = lines[1].split(",")[:3]
    sample.write_text("\n".join([lines[0], f"{image_id},{int(width) + 1},{height}"]) + "\n")
    with pytest.raises(BatchFailures) as failed:
        predict_submission(cfg, tiny_run["run"], data / "test", sample, tmp_path / "y.csv",
                           masks=tiny_run["masks"], progress=False)
    assert failed.value.failures[0][1].startswith(f"image {image_id} is {int(width)}x{height} px but the sample")
    with pytest.raises(InputError, match="not a training run"):
        predict_submission(cfg, tmp_path, data / "test", data / "sample_submission.csv", tmp_path / "z.csv", progress=False)


def test_training_and_prediction_feed_the_model_the_same_pixels(tiny_run, tmp_path):
    """Crops cut at 48 px for a 32 px model: the training pipeline's input for a cell equals the
    input prediction builds for that cell, pixel for pixel."""
    from hpa_scc.core.config import load_config
    from hpa_scc.train.examples import make_examples
    from hpa_scc.train.sources import CropSource

    cfg = load_config(None, TINY_RUN_SETTINGS + ["crops.size=48", "model.size=32", "train.mode=cells"])
    images, masks = tiny_run["data"] / "test", tiny_run["masks"]
    ids = list_image_ids(images)[:2]
    labels = {i: (0,) for i in ids}
    examples = make_examples(cfg, images, labels, masks, cache=tmp_path / "crops")
    source = CropSource(cfg, images, masks, tmp_path / "crops")
    spec = PrepareSpec(str(images), str(masks), cfg.segment, cfg.crops, cfg.model.size, cfg.model.channels, None)
    prepared = {i: prepare_image(spec, i) for i in ids}
    assert len(examples) == sum(len(p.cell_ids) for p in prepared.values())
    for example in examples:
        fed_in_training = source.pixels(example)
        image = prepared[example.image_id]
        fed_in_prediction = image.crops[list(image.cell_ids).index(example.cell_id)]
        assert fed_in_training.shape == (32, 32, 4)
        np.testing.assert_array_equal(fed_in_training, fed_in_prediction)


def test_crop_cache_follows_the_masks(tiny_run, tmp_path):
    """A crop cache file is cut again when the image's masks change, or when it is unreadable."""
    import shutil
    import warnings

    from hpa_scc.core.config_images import CropConfig
    from hpa_scc.core.layout import cache_path
    from hpa_scc.crops.cache import load_or_make_crops
    from hpa_scc.segment.cache import read_masks, write_masks
    from hpa_scc.segment.labels import Segmentation

    images = tiny_run["data"] / "test"
    image_id = list_image_ids(images)[0]
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in tiny_run["masks"].glob(f"{image_id}_*.png"):
        shutil.copy(path, masks)
    cfg, cache = CropConfig(size=32), tmp_path / "crops"
    first = load_or_make_crops(images, masks, image_id, cfg, 32, cache)
    seg = read_masks(masks, image_id)
    kept = np.where(seg.cells == 1, 0, seg.cells)  # re-segmented: cell 1 is gone
    write_masks(masks, image_id, Segmentation(kept, np.where(seg.nuclei == 1, 0, seg.nuclei)))
    second = load_or_make_crops(images, masks, image_id, cfg, 32, cache)
    assert 1 in first.cell_ids and 1 not in second.cell_ids and len(second.cell_ids) == len(first.cell_ids) - 1
    cache_path(cache, image_id, cfg, 32, 4).write_bytes(b"not an npz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        third = load_or_make_crops(images, masks, image_id, cfg, 32, cache)
    assert any("unreadable" in str(w.message) for w in caught)
    np.testing.assert_array_equal(third.crops, second.crops)


def test_cpu_batch_cap_applies_only_without_a_gpu():
    import tensorflow as tf

    from hpa_scc.core.config_learning import PredictConfig
    from hpa_scc.predict.submit import effective_batch_size

    cfg = PredictConfig(batch_size=128, cpu_batch_size=32)
    expected = 128 if tf.config.list_physical_devices("GPU") else 32
    assert effective_batch_size(cfg) == expected
    assert effective_batch_size(PredictConfig(batch_size=8, cpu_batch_size=32)) == 8


@pytest.mark.gpu
def test_batches_on_a_gpu_use_the_full_batch_size():
    from hpa_scc.core.config_learning import PredictConfig
    from hpa_scc.predict.submit import effective_batch_size

    assert effective_batch_size(PredictConfig(batch_size=128, cpu_batch_size=32)) == 128
