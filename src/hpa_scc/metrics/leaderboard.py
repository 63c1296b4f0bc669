"""A local leaderboard: every submission CSV of a folder scored and ranked, cached by file hashes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from hpa_scc.core.classes import CLASSES, COMPETITION_IOU
from hpa_scc.core.errors import InputError
from hpa_scc.core.files import atomic_write_text, file_sha256
from hpa_scc.core.layout import CELL_TABLE_SUFFIX
from hpa_scc.metrics.competition import score_rows
from hpa_scc.submission.rows import read_submission


@dataclass
class LeaderboardEntry:
    name: str
    map: Optional[float]
    best_class: str = ""
    worst_class: str = ""
    date: str = ""
    error: str = ""


def leaderboard(folder: str | Path, solution: str | Path, iou: float = COMPETITION_IOU, strict: bool = False,
                cache_name: str = ".leaderboard_cache.json") -> list[LeaderboardEntry]:
    """Score every *.csv in `folder` (except the solution and per-cell tables *.cells.csv);
    cached by file hashes. Best first."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"leaderboard folder {folder} does not exist")
    solution = Path(solution)
    cache_path = folder / cache_name
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    except json.JSONDecodeError:
        cache = {}
    solution_key = file_sha256(solution)
    solution_rows = None
    entries = []
    for path in sorted(folder.glob("*.csv")):
        if path.resolve() == solution.resolve() or path.name.endswith(CELL_TABLE_SUFFIX):
            continue
        key = f"{file_sha256(path)}:{solution_key}:{iou}:{strict}"
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        if key not in cache:
            if solution_rows is None:
                solution_rows = read_submission(solution)
            try:
                result = score_rows(read_submission(path), solution_rows, iou, strict)
                scored = [(a, c) for c, a in enumerate(result.ap) if a is not None]
                best = max(scored)
                worst = min(scored)
                cache[key] = asdict(LeaderboardEntry(
                    path.name, result.map, f"{CLASSES[best[1]].key} {best[0]:.3f}", f"{CLASSES[worst[1]].key} {worst[0]:.3f}"))
            except InputError as exc:
                cache[key] = asdict(LeaderboardEntry(path.name, None, error=str(exc)))
        entry = LeaderboardEntry(**{**cache[key], "name": path.name, "date": date})
        entries.append(entry)
    atomic_write_text(cache_path, json.dumps(cache, indent=1))
    entries.sort(key=lambda e: (e.map is None, -(e.map or 0.0), e.name))
    return entries


def format_leaderboard(entries: list[LeaderboardEntry]) -> str:
    lines = [f"{'#':>3}  {'submission':<36} {'mAP':>8}  {'best class':<24} {'worst class':<24} date"]
    for rank, e in enumerate(entries, start=1):
        value = f"{e.map:.4f}" if e.map is not None else "error"
        lines.append(f"{rank:>3}  {e.name:<36} {value:>8}  {e.best_class:<24} {e.worst_class:<24} {e.date}")
        if e.error:
            lines.append(f"     {e.error}")
    return "\n".join(lines)
