"""Files written safely: atomic writes (temp file + rename), stale temp-file clean-up, hashes, settings stamps."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Iterator, Optional

from hpa_scc.core.errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{_temp_stem(path.name)}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


TEMP_STEM_BYTES = 120  # a temp file's name keeps this much of the final name: it must fit in 255 bytes too


def _temp_stem(name: str) -> str:
    """The start of `name` that a temp file's name carries (at most TEMP_STEM_BYTES of UTF-8)."""
    return name.encode()[:TEMP_STEM_BYTES].decode(errors="ignore")


def remove_stale_temp_files(folder: str | Path, name: str = "") -> None:
    """Delete temp files that `atomic_path` left in `folder` when a process was killed (for files
    named `name*`, or all). Call before starting work that writes there."""
    for stale in Path(folder).glob(f".{glob_escape(_temp_stem(name))}*.tmp*"):
        stale.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_hash(values: dict) -> str:
    """Short, stable hash (16 hex digits) of a JSON-serialisable dict of settings."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to `path` atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


STAMP_KEY = "settings_key"


def stamp_key(stamp: str | Path) -> Optional[str]:
    """The settings key recorded in a stamp file (a folder's JSON record of the settings its contents
    were made with); None when the file is absent or unreadable."""
    try:
        recorded = json.loads(Path(stamp).read_text())
    except (OSError, ValueError):
        return None
    return recorded.get(STAMP_KEY) if isinstance(recorded, dict) else None


def write_stamp(stamp: str | Path, settings: dict, **extra) -> str:
    """Record `settings` (and `extra` fields) in a stamp file, atomically; returns their key."""
    key = settings_hash(settings)
    atomic_write_text(stamp, json.dumps({STAMP_KEY: key, "settings": settings, **extra}, indent=1))
    return key


def claim_folder(stamp: str | Path, settings: dict, what: str, force: bool = False) -> bool:
    """Record that the folder of `stamp` holds `what` made with `settings`: the one "was this folder
    made with these settings?" check of every cache and output folder.

    InputError when it holds some made with other settings, unless `force` (`what` names them, e.g.
    "masks made with other segmentation settings"); returns True when the earlier contents were made
    with other settings (the caller redoes or deletes them).
    """
    stamp = Path(stamp)
    changed = stamp.is_file() and stamp_key(stamp) != settings_hash(settings)
    if changed and not force:
        raise InputError(f"{stamp.parent} holds {what} ({stamp}); "
                         "use another --out folder or --force to redo them")
    write_stamp(stamp, settings)
    return changed


def refuse_overwriting_inputs(outputs: dict[str, str | Path], inputs: dict[str, str | Path]) -> None:
    """InputError when an output path is one of the inputs (the same file or folder, links
    resolved): `outputs` and `inputs` map what each path is (e.g. "--out") to the path."""
    resolved = {name: Path(path).resolve() for name, path in inputs.items() if path is not None}
    for out_name, out_path in outputs.items():
        target = Path(out_path).resolve()
        for in_name, source in resolved.items():
            if target == source:
                raise InputError(f"{out_name} {out_path} is the {in_name} input: writing it would overwrite "
                                 "that input; choose another output path")
