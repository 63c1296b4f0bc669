import subprocess
import sys

import pytest

from hpa_scc.app.cli import main
from hpa_scc.data.images import list_image_ids


def run(*args):
    return subprocess.run([sys.executable, "-m", "hpa_scc", *args], capture_output=True, text=True)


def test_help_of_every_command(capsys):
    out = run("--help")  # the real entry point, once
    assert out.returncode == 0
    for command in ("synth", "validate", "score", "leaderboard", "segment", "prepare", "train", "predict", "show", "bench",
                    "demo"):
        assert command in out.stdout
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0 and "usage: hpa-scc " + command in capsys.readouterr().out


def test_each_bench_has_its_own_parser(capsys):
    """`hpa-scc bench NAME --help` lists that bench's flags only."""
    for bench, own, foreign in (("segment", "--real", "--methods"), ("quality", "--methods", "--real"),
                                ("score", "--images", "--seed"), ("prepare", "--config", "--methods")):
        with pytest.raises(SystemExit):
            main(["bench", bench, "--help"])
        text = capsys.readouterr().out
        assert own in text and foreign not in text, (bench, text)
    with pytest.raises(SystemExit):
        main(["bench", "segment", "--methods", "mil"])
    assert "unrecognized arguments: --methods" in capsys.readouterr().err


def test_synth_command(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--n-train", "2", "--n-test", "1", "--set", "synth.sizes=[160]",
                 "--workers", "1", "--quiet"]) == 0
    assert "2 train + 1 test images" in capsys.readouterr().out
    assert len(list_image_ids(tmp_path / "train")) == 2


def test_validate_and_score_commands(tiny_data, tmp_path, capsys):
    solution = tiny_data / "solution.csv"
    assert main(["validate", str(solution), "--sample", str(tiny_data / "sample_submission.csv")]) == 0
    assert main(["score", str(solution), "--solution", str(solution), "--per-class",
                 "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "mAP 1.000000"
    assert (tmp_path / "s.png").stat().st_size > 1000 and (tmp_path / "s.json").is_file()
    # A degraded copy (labels shuffled) scores lower.
    lines = solution.read_text().splitlines()
    degraded = [lines[0]]
    for line in lines[1:]:
        head, _, preds = line.rpartition(",")
        parts = preds.split()
        for i in range(0, len(parts), 6):  # every other triple gets another label
            parts[i] = str((int(parts[i]) + 3) % 19)
        degraded.append(f"{head},{' '.join(parts)}")
    (tmp_path / "degraded.csv").write_text("\n".join(degraded) + "\n")
    assert main(["score", str(tmp_path / "degraded.csv"), "--solution", str(solution)]) == 0
    value = float(capsys.readouterr().out.strip().split()[-1])
    assert value < 1.0


def test_validate_rejects_corrupted_row(tiny_data, tmp_path, capsys):
    text = (tiny_data / "solution.csv").read_text().splitlines()
    head, _, preds = text[2].rpartition(",")
    text[2] = head + "," + preds.replace(" 1 ", " 7 ", 1)  # confidence outside [0, 1]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    assert main(["validate", str(bad)]) == 1
    assert f"row 3 (ID {text[2].split(',')[0]}):" in capsys.readouterr().err


def test_errors_are_one_line_and_nonzero(tmp_path):
    out = run("score", str(tmp_path / "missing.csv"), "--solution", str(tmp_path / "missing.csv"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "does not exist" in out.stderr
    bad_config = tmp_path / "c.yaml"
    bad_config.write_text("train:\n  epocs: 1\n")
    out = run("synth", "--config", str(bad_config), "--out", str(tmp_path / "x"))
    assert out.returncode == 2 and "unknown config key 'train.epocs'" in out.stderr


def test_segment_and_show(tiny_data, tmp_path, capsys):
    masks = tmp_path / "masks"
    assert main(["segment", "--images", str(tiny_data / "test"), "--out", str(masks), "--workers", "1", "--quiet"]) == 0
    image_id = list_image_ids(tiny_data / "test")[0]
    picture = tmp_path / "o.png"
    assert main(["show", image_id, "--images", str(tiny_data / "test"), "--masks", str(masks), "--out", str(picture)]) == 0
    assert picture.stat().st_size > 1000
    assert main(["show", "nope", "--images", str(tiny_data / "test"), "--masks", str(masks)]) == 2


@pytest.mark.slow
def test_quick_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quick", "--set", "train.batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "demo finished" in out and "mAP" in out
    for path in ("runs/demo/model.keras", "submissions/demo.csv", "submissions/demo.cells.csv",
                 "submissions/demo_broadcast.csv", "reports/demo/index.html", "reports/demo/per_class_ap.png",
                 "reports/demo/overlays.png", "reports/demo/curves.png"):
        assert (tmp_path / path).is_file(), path
    assert main(["validate", "submissions/demo.csv", "--sample", "data/demo/sample_submission.csv"]) == 0
    page = (tmp_path / "reports/demo/index.html").read_text()
    assert "per_class_ap.png" in page and "overlays.png" in page
