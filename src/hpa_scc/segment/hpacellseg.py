"""The `hpacellseg` backend: HPA-Cell-Segmentation's own U-Nets and its own post-processing.

    segment:
      backend: hpacellseg
      nuclei_model: /kaggle/input/hpacellseg-weights/dpn_unet_nuclei_v1.pth
      cell_model: /kaggle/input/hpacellseg-weights/dpn_unet_cell_3ch_v1.pth
      label_mode: exact        # or fast (half-side post-processing, ~7x faster)

The package's `CellSegmentator` gives the nucleus and cell maps (uint8 H x W x 3, the image's
size); `label_cell` (this project's version of hpacellseg's, `segment.label_cell`) turns them
into labels, as the competition's ground truth was made. Images are padded (1728² images fail
unpadded), the weights are whole serialised modules loaded here with `weights_only=False` (torch
>= 2.6 refuses them by default), and a missing package, torch or weight file is one clear line.
Nothing is downloaded: the weight files are local.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpa_scc.core.config_images import SegmentConfig
from hpa_scc.core.errors import InputError
from hpa_scc.data.images import to_uint8
from hpa_scc.segment.label_cell import label_cell
from hpa_scc.segment.labels import Segmentation, check_rgby

WEIGHT_FILES = {"nuclei_model": "dpn_unet_nuclei_v1.pth", "cell_model": "dpn_unet_cell_3ch_v1.pth"}


def _check_weights(cfg: SegmentConfig) -> None:
    """InputError naming the setting when a weight file is not a local file."""
    for key, usual in WEIGHT_FILES.items():
        path = getattr(cfg, key)
        if not path or not Path(path).is_file():
            raise InputError(f"segment.{key} must name a local hpacellseg weight file ({usual}), got {path!r}; "
                             "weights are never downloaded: copy them next to the data and set the path")


def _load_module(torch, path: str):
    """A whole serialised torch module from `path` on the CPU (the trusted hpacellseg weights)."""
    try:
        module = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - deserialising, zip and torch errors alike: one line naming the file
        raise InputError(f"{path} is not a loadable hpacellseg weight file ({type(exc).__name__}: {str(exc)[:120]})") from None
    return module.module if isinstance(module, torch.nn.DataParallel) else module


class HpaCellSegBackend:
    """RGBY float H x W x 4 in [0, 1] -> Segmentation with hpacellseg's U-Nets and label_cell."""

    def __init__(self, cfg: SegmentConfig):
        try:
            import torch  # optional: only this backend needs it
            from hpacellseg.cellsegmentator import CellSegmentator  # optional package, see kernels/README.md
        except ImportError as exc:
            raise InputError(f"segment.backend hpacellseg needs the HPA-Cell-Segmentation package and torch "
                             f"({exc.name or exc} is missing): install both offline (kernels/README.md) "
                             "or use segment.backend=unet or classical") from None
        _check_weights(cfg)
        self.cfg = cfg
        self.segmentator = CellSegmentator(_load_module(torch, cfg.nuclei_model), _load_module(torch, cfg.cell_model),
                                           scale_factor=cfg.scale, device="cuda" if torch.cuda.is_available() else "cpu",
                                           padding=True, multi_channel_model=True)

    def maps(self, rgby: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(nuclei_pred, cell_pred): hpacellseg's uint8 H x W x 3 maps of one image."""
        red, blue, yellow = (to_uint8(rgby[..., c]) for c in (0, 2, 3))
        nuclei_pred = self.segmentator.pred_nuclei([blue])[0]
        cell_pred = self.segmentator.pred_cells([[red], [yellow], [blue]])[0]
        return np.asarray(nuclei_pred, np.uint8), np.asarray(cell_pred, np.uint8)

    def __call__(self, rgby: np.ndarray) -> Segmentation:
        check_rgby(rgby)
        nuclei, cells = label_cell(*self.maps(rgby), mode=self.cfg.label_mode)
        return Segmentation(cells.astype(np.uint16), nuclei.astype(np.uint16))


WHEEL_PATTERN = "hpacellseg-*.whl"
SEARCH_DEPTH = 3  # folders below each input dataset that are searched


def _find(root: Path, pattern: str) -> list[Path]:
    """Files under `root` matching `pattern`, at most SEARCH_DEPTH folders deep, sorted."""
    found: list[Path] = []
    for depth in range(SEARCH_DEPTH + 1):
        found += root.glob("/".join(["*"] * depth + [pattern]))
    return sorted(p for p in found if p.is_file())


def find_hpacellseg_inputs(inputs: Path) -> dict:
    """What a Kaggle kernel has of hpacellseg among its attached datasets (`inputs`, e.g. /kaggle/input):
    {"nuclei_model": path or None, "cell_model": path or None, "wheels": folder of an hpacellseg wheel
    or None}. The weight files are found by their names (WEIGHT_FILES), the wheel by WHEEL_PATTERN."""
    inputs = Path(inputs)
    found: dict = {key: next(iter(_find(inputs, name)), None) for key, name in WEIGHT_FILES.items()}
    wheel = next(iter(_find(inputs, WHEEL_PATTERN)), None)
    found["wheels"] = wheel.parent if wheel is not None else None
    return found


def segmenter_choice(found: dict, package_importable: bool) -> tuple[list[str], str]:
    """(config overrides, one log line) for a kernel: hpacellseg when both weight files are attached and
    its package is importable or attached as a wheel, else the default segmenter."""
    if found["nuclei_model"] and found["cell_model"] and (package_importable or found["wheels"]):
        source = "installed" if package_importable else f"wheel in {found['wheels']}"
        overrides = ["segment.backend=hpacellseg", f"segment.nuclei_model={found['nuclei_model']}",
                     f"segment.cell_model={found['cell_model']}"]
        return overrides, (f"segmenter: hpacellseg (weights {found['nuclei_model']}, {found['cell_model']}; "
                           f"package {source})")
    missing = [name for key, name in WEIGHT_FILES.items() if not found[key]]
    if not missing:
        missing = ["the hpacellseg package (no hpacellseg-*.whl among the inputs)"]
    return [], f"segmenter: the default (the shipped U-Net); hpacellseg not used: missing {', '.join(missing)}"
