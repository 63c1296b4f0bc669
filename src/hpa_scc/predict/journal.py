"""The resume journal `OUT.journal.jsonl`: a header with the settings key, one JSON line per finished image."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from hpa_scc.core.config import Config, config_to_dict
from hpa_scc.core.errors import InputError
from hpa_scc.core.files import file_sha256, settings_hash
from hpa_scc.core.layout import MODEL_FILE
from hpa_scc.predict.batching import ScoredImage
from hpa_scc.predict.run_settings import RunSettings


def read_journal(path: Path, key: str) -> dict[str, dict]:
    """Records of finished images from a journal; drops a torn last line; InputError on a key mismatch."""
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    if len(complete) != len(raw):  # a kill in the middle of a line: cut it off
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return {}
    try:
        header = json.loads(lines[0])
        records = [json.loads(line) for line in lines[1:]]
    except json.JSONDecodeError:
        raise InputError(f"{path} is corrupt: delete it to start the prediction again") from None
    if header.get("key") != key:
        raise InputError(f"{path} was made with another model or settings: delete it (or use --force) to start again")
    return {r["id"]: r for r in records}


def journal_record(scored: ScoredImage) -> dict:
    image = scored.image
    return {"id": image.image_id, "height": image.height, "width": image.width,
            "cell_ids": image.cell_ids.tolist(), "boxes": image.boxes.tolist(), "tokens": image.tokens,
            "blue": [round(float(b), 6) for b in image.blue],
            "cell": scored.cell_probs.astype(float).tolist(),
            "image": None if scored.image_probs is None else scored.image_probs.astype(float).tolist()}


class Journal:
    """Append-only JSON-lines file: a header with the settings key, then one line per finished image."""

    def __init__(self, path: Path, key: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.is_file() or path.stat().st_size == 0
        self.handle = open(path, "a", encoding="utf-8")
        if fresh:
            self.append({"key": key})

    def append(self, value: dict) -> None:
        """Write one line and make it durable before returning."""
        self.handle.write(json.dumps(value, separators=(",", ":")) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


def journal_key(run: Path, settings: RunSettings, cfg: Config, engine: str, masks: Optional[str]) -> str:
    """Hash of what changes the raw probabilities in a journal (not the blend)."""
    values = {"model": file_sha256(run / MODEL_FILE), "crops": config_to_dict(settings.crops), "size": settings.size,
              "channels": settings.channels, "segment": config_to_dict(cfg.segment) if masks is None else str(masks),
              "engine": engine, "tta": cfg.predict.tta, "image_score": cfg.predict.image_score,
              **({"tta_rot90": True} if cfg.predict.tta and cfg.predict.tta_rot90 else {}),
              "image_model": file_sha256(Path(cfg.predict.image_model) / MODEL_FILE) if cfg.predict.image_model else None}
    return settings_hash(values)
