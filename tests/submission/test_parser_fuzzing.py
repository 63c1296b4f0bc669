"""Fuzzing of the parsers (mask tokens, PredictionStrings, CSV readers): they return or raise HpaSccError types."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpa_scc.core.errors import HpaSccError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(token=st.text(max_size=60), height=st.integers(0, 40), width=st.integers(0, 40))
def test_token_decoder_on_arbitrary_text(token, height, width):
    from hpa_scc.submission.encode import decode_mask

    try:
        mask = decode_mask(token, height, width)
    except HpaSccError:
        return
    assert mask.shape == (height, width)


@FUZZ
@given(token=st.binary(max_size=40).map(lambda b: __import__("base64").b64encode(__import__("zlib").compress(b)).decode()))
def test_token_decoder_on_valid_base64_zlib_of_arbitrary_bytes(token):
    from hpa_scc.submission.encode import decode_mask

    try:
        mask = decode_mask(token, 8, 6)
    except HpaSccError:
        return
    assert mask.shape == (8, 6)


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("0123456789. -eE+abcxyzNn=/\t")), max_size=80))
def test_prediction_string_parser_on_arbitrary_text(text):
    from hpa_scc.submission.rows import parse_prediction_string

    try:
        predictions = parse_prediction_string(text, 8, 6)
    except HpaSccError:
        return
    assert all(0 <= p.label < 19 and 0.0 <= p.confidence <= 1.0 for p in predictions)


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)), header=st.booleans())
def test_csv_readers_on_arbitrary_bytes(tmp_path_factory, content, header):
    from hpa_scc.data.tables import read_labels, read_sample_submission
    from hpa_scc.submission.rows import read_submission

    path = tmp_path_factory.mktemp("fuzz") / "x.csv"
    path.write_bytes((b"ID,ImageWidth,ImageHeight,PredictionString\n" if header else b"") + content)
    for reader in (read_submission, read_labels, read_sample_submission):
        try:
            reader(path)
        except HpaSccError:
            pass
