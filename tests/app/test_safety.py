"""Loading safety: models with code are refused; no eval, exec or pickle in the source."""

import re

import pytest
from conftest import PROJECT


def test_model_with_arbitrary_code_is_refused(tmp_path):
    import keras

    from hpa_scc.core.errors import InputError
    from hpa_scc.model.classifier import load_classifier

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(19)(keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(InputError, match="not a loadable Keras model"):
        load_classifier(path)


def test_source_has_no_eval_exec_or_pickle():
    pattern = re.compile(r"\b(eval|exec)\(|\bpickle\b|allow_pickle\s*=\s*True|safe_mode\s*=\s*False|yaml\.load\(|"
                         r"unsafe_load|marshal")
    offenders = [f"{path.relative_to(PROJECT)}:{n}" for path in sorted((PROJECT / "src").rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), start=1) if pattern.search(line)]
    assert offenders == []
