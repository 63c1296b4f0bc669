"""Helpers of the command-line tests: run the real CLI in-process, read its one-line errors,
write images."""

from pathlib import Path

import numpy as np
from conftest import TINY_RUN_SETTINGS

from hpa_scc.app.cli import main
from hpa_scc.core.config_images import SynthConfig
from hpa_scc.data.images import CHANNELS, to_uint8, to_uint16, write_png

SETTINGS = [arg for item in TINY_RUN_SETTINGS for arg in ("--set", item)]


def cli(capsys, *args):
    """Run the real command line in-process -> (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str, *fragments: str) -> None:
    lines = [line for line in err.strip().splitlines() if not line.startswith(("segment", "predict"))]  # bars
    assert len(lines) == 1 and lines[0].startswith("hpa-scc: error:"), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def write_image(folder: Path, image_id: str, rgby: np.ndarray, bits: int = 8) -> None:
    convert = to_uint16 if bits == 16 else to_uint8
    for k, channel in enumerate(CHANNELS):
        write_png(folder / f"{image_id}_{channel}.png", convert(rgby[..., k]))


def synthetic_rgby(seed: int, size: int = 256) -> np.ndarray:
    from hpa_scc.synth.draw import generate_image

    return generate_image(seed, size, SynthConfig(cells_min=6, cells_max=10)).rgby


def grid_of_cells(h: int = 1024, w: int = 768) -> np.ndarray:
    """20 x 15 = 300 small cells, each with a round nucleus."""
    rgby = np.zeros((h, w, 4), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = (yy % 51) - 25, (xx % 51) - 25
    rgby[..., 2] = ((cy ** 2 + cx ** 2) < 12 ** 2) * 0.8
    rgby[..., 0] = rgby[..., 3] = ((yy % 51 > 1) & (xx % 51 > 1)) * 0.4
    return rgby



def failure_lines(err: str, total: int, *failed: tuple[str, ...]) -> None:
    """stderr of a batch with bad images: one `failed ID: problem` line per image (each holding its
    fragments), then `N of M images failed`."""
    lines = [line for line in err.strip().splitlines() if line.startswith("hpa-scc:")]
    assert lines[-1] == f"hpa-scc: {len(failed)} of {total} images failed", err
    assert len(lines) == len(failed) + 1, err
    for line, fragments in zip(lines, failed):
        assert line.startswith(f"hpa-scc: failed {fragments[0]}: "), line
        for fragment in fragments:
            assert fragment in line, (fragment, line)
