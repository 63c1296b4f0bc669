"""The hpacellseg backend without the package: clear one-line errors, and a Kaggle kernel's choice of
segmenter from its attached inputs (a mirrored /kaggle/input)."""

import pytest

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import ConfigError, InputError
from hpa_scc.segment.hpacellseg import find_hpacellseg_inputs, segmenter_choice
from hpa_scc.segment.segmenter import make_segmenter


def mirror(root, weights=True, wheel=True):
    """A /kaggle/input with the competition data, and optionally hpacellseg's weights and wheel."""
    (root / "hpa-single-cell-image-classification" / "test").mkdir(parents=True)
    if weights:
        folder = root / "hpacellseg-weights" / "v1"
        folder.mkdir(parents=True)
        for name in ("dpn_unet_nuclei_v1.pth", "dpn_unet_cell_3ch_v1.pth"):
            (folder / name).write_bytes(b"not a real model")
    if wheel:
        (root / "hpacellseg-wheels").mkdir()
        (root / "hpacellseg-wheels" / "hpacellseg-0.1.8-py3-none-any.whl").write_bytes(b"")
    return root


def test_kernel_picks_hpacellseg_when_weights_and_wheel_are_attached(tmp_path):
    found = find_hpacellseg_inputs(mirror(tmp_path))
    overrides, line = segmenter_choice(found, package_importable=False)
    assert overrides[0] == "segment.backend=hpacellseg"
    assert overrides[1] == f"segment.nuclei_model={tmp_path / 'hpacellseg-weights' / 'v1' / 'dpn_unet_nuclei_v1.pth'}"
    assert overrides[2].endswith("dpn_unet_cell_3ch_v1.pth") and "wheel in" in line and line.startswith("segmenter: hpacellseg")


@pytest.mark.parametrize("weights, wheel, importable, missing", [
    (False, True, True, "dpn_unet_nuclei_v1.pth, dpn_unet_cell_3ch_v1.pth"),
    (True, False, False, "the hpacellseg package"),
])
def test_kernel_falls_back_to_the_default_segmenter(tmp_path, weights, wheel, importable, missing):
    overrides, line = segmenter_choice(find_hpacellseg_inputs(mirror(tmp_path, weights, wheel)), importable)
    assert overrides == [] and line.startswith("segmenter: the default (the shipped U-Net)") and missing in line


def test_installed_package_needs_no_wheel(tmp_path):
    overrides, line = segmenter_choice(find_hpacellseg_inputs(mirror(tmp_path, wheel=False)), package_importable=True)
    assert overrides and "package installed" in line


def test_backend_without_package_or_weights_is_one_clear_line(tmp_path):
    with pytest.raises(InputError, match="needs the HPA-Cell-Segmentation package and torch"):
        make_segmenter(SegmentConfig(backend="hpacellseg", nuclei_model=str(tmp_path / "n.pth"),
                                     cell_model=str(tmp_path / "c.pth")))
    with pytest.raises(ConfigError, match="segment.label_mode must be exact or fast"):
        SegmentConfig(label_mode="quick")
