"""Reading and writing HPA images: RGBY channel files, label PNGs, image IDs.

An image ID names four single-channel files in one folder, `{ID}_{channel}.{ext}` for
channel in red, green, blue, yellow (Kaggle: 8-bit PNG; public HPA: 16-bit PNG, TIFF or JPEG).
`read_rgby` returns float32 H x W x 4 in channel order red, green, blue, yellow, scaled to
[0, 1] by the file's dtype range. Every bad input raises InputError naming the ID and file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from PIL import Image

from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_path
from hpa_scc.core.layout import validate_id

CHANNELS = ("red", "green", "blue", "yellow")


EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


_CHANNEL_FILE = re.compile(r"^(?P<id>.+)_(?P<channel>red|green|blue|yellow)\.(?P<ext>png|tiff?|jpe?g)$", re.I)


def channel_path(folder: Path, image_id: str, channel: str) -> Path:
    """Path of one channel file of `image_id`, trying each known extension."""
    validate_id(image_id)
    folder = Path(folder)
    for ext in EXTENSIONS:
        path = folder / f"{image_id}_{channel}{ext}"
        if path.is_file():
            return path
    raise InputError(f"image {image_id}: missing {channel} channel ({folder / (image_id + '_' + channel)}.png)")


def read_channel(path: Path, image_id: str = "") -> np.ndarray:
    """Read one channel file as a 2-D array scaled to float32 [0, 1] by its dtype."""
    path = Path(path)
    prefix = f"image {image_id}: " if image_id else ""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{prefix}cannot read {path}: {exc.strerror}") from None
    if data.size == 0:
        raise InputError(f"{prefix}{path} is empty")
    _check_header(path, prefix)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{prefix}{path} is not a readable image (corrupt or truncated)")
    if array.ndim == 3 and array.shape[2] in (3, 4) and _is_gray(array):
        array = array[..., 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        raise InputError(f"{prefix}{path} is a colour image whose planes differ (shape {array.shape}); "
                         "a channel file must hold one grey plane (grey saved as RGB, RGBA or palette is read)")
    if array.ndim != 2:
        raise InputError(f"{prefix}{path} must be a single-channel 2-D image, got shape {array.shape}")
    return scale_to_unit(array, f"{prefix}{path}")


MAX_PIXELS = 64_000_000  # a channel file over this is refused before decoding (real HPA: at most 3072² = 9.4 M)


def _check_header(path: Path, prefix: str) -> None:
    """InputError when the file's header declares more than MAX_PIXELS pixels (read before any
    pixel is decoded: a small file can declare a huge image). Files PIL cannot parse pass on to
    the decoder, which names their problem."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise InputError(f"{prefix}{path} declares an image too large to decode safely "
                         f"(over {MAX_PIXELS // 1_000_000} megapixels)") from None
    except Exception:  # noqa: BLE001 - not PIL-readable: cv2 reports it
        return
    if width * height > MAX_PIXELS:
        raise InputError(f"{prefix}{path} is {width}x{height} px ({width * height / 1e6:.0f} megapixels), over the "
                         f"limit of {MAX_PIXELS // 1_000_000} megapixels for one channel: not an HPA image, or resize it")


def _is_gray(array: np.ndarray) -> bool:
    """True when a 3/4-channel image repeats one gray plane (some tools save gray as RGB)."""
    return bool(np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2]))


def scale_to_unit(array: np.ndarray, source: object = "") -> np.ndarray:
    """Integer image -> float32 in [0, 1] by its dtype's range (uint8 /255, uint16 /65535)."""
    if array.dtype == np.uint8:
        return np.multiply(array, np.float32(1.0 / 255.0), dtype=np.float32)
    if array.dtype == np.uint16:
        return np.multiply(array, np.float32(1.0 / 65535.0), dtype=np.float32)
    if array.dtype in (np.float32, np.float64):
        if not np.isfinite(array).all():
            raise InputError(f"{source}: holds NaN or infinite pixel values")
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < -1e-3 or high > 1.0 + 1e-3:  # raw units (e.g. 0-4095): clipping would erase the image
            raise InputError(f"{source}: floating-point pixels span [{low:g}, {high:g}], outside [0, 1]; "
                             "save the channel as 8- or 16-bit integers, or scale it to [0, 1]")
        return np.clip(array, 0.0, 1.0).astype(np.float32)
    raise InputError(f"{source}: unsupported pixel type {array.dtype} (expected 8- or 16-bit)")


def read_rgby(folder: str | Path, image_id: str) -> np.ndarray:
    """Read an image ID as float32 H x W x 4 (red, green, blue, yellow) in [0, 1]."""
    folder = Path(folder)
    rgby: Optional[np.ndarray] = None
    for k, channel in enumerate(CHANNELS):
        plane = read_channel(channel_path(folder, image_id, channel), image_id)
        if rgby is None:
            rgby = np.empty(plane.shape + (len(CHANNELS),), np.float32)
        elif plane.shape != rgby.shape[:2]:
            raise InputError(
                f"image {image_id}: {channel} channel is {plane.shape[1]}x{plane.shape[0]} but red is "
                f"{rgby.shape[1]}x{rgby.shape[0]} (channels must have one size)"
            )
        rgby[..., k] = plane
    return rgby


def image_size(folder: str | Path, image_id: str) -> tuple[int, int]:
    """(height, width) of an image from its red channel's header, without decoding pixels."""
    path = channel_path(Path(folder), image_id, "red")

    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as exc:  # PIL raises many types for bad files
        raise InputError(f"image {image_id}: {path} is not a readable image ({exc})") from None
    return height, width


def list_image_ids(folder: str | Path) -> list[str]:
    """Sorted IDs that have at least one channel file in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"image folder {folder} does not exist")
    ids = set()
    for entry in os.scandir(folder):
        match = _CHANNEL_FILE.match(entry.name)
        if match:
            ids.add(match.group("id"))
    return sorted(ids)


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a 2-D uint8/uint16 array as PNG, atomically."""
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3):
        raise InputError(f"{path}: can only write uint8/uint16 images, got {array.dtype} {array.shape}")
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise InputError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.tobytes())


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label image (uint8/uint16 PNG) as an integer array H x W (0 = background)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"label image {path} does not exist")
    array = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{path} is not a readable image (corrupt or truncated)")
    if array.ndim == 3:
        array = array[..., 0]
    return array


def to_uint8(plane: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8 (rounded)."""
    return np.clip(np.rint(plane * 255.0), 0, 255).astype(np.uint8)


def to_uint16(plane: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint16 (rounded)."""
    return np.clip(np.rint(plane * 65535.0), 0, 65535).astype(np.uint16)


def find_shared_data(start: Optional[Path] = None) -> Optional[Path]:
    """Locate `../shared/data/hpa_real` beside the project (None if absent)."""
    env = os.environ.get("HPA_REAL_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(start or Path.cwd()).resolve()
    for parent in [here, *here.parents]:
        candidate = parent.parent / "shared" / "data" / "hpa_real"
        if candidate.is_dir():
            return candidate
    return None
