"""Charts as PNG files: per-class AP, training curves, the quality bench. Plots take rows, not file paths."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from hpa_scc.core.classes import CLASSES, NUM_CLASSES
from hpa_scc.core.files import atomic_path
from hpa_scc.metrics.competition import ScoreResult


def plot_per_class(result: ScoreResult, path: str | Path, title: str = "") -> Path:
    """Bar chart of per-class AP (PNG)."""
    values = [a if a is not None else 0.0 for a in result.ap]
    fig = Figure(figsize=(9, 3.6))
    ax = fig.subplots()
    colours = ["#4c72b0" if a is not None else "#cccccc" for a in result.ap]
    ax.bar(range(NUM_CLASSES), values, color=colours)
    ax.set_xticks(range(NUM_CLASSES), [c.key for c in CLASSES], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("AP")
    ax.set_title(title or f"per-class AP (mAP {result.map:.4f}, IoU {result.iou})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def _number(text: str) -> float:
    """A history.csv value as float; CSVLogger writes 'NA' for a metric missing in an epoch."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def plot_curves(rows: list[dict], path: Path) -> None:
    """Loss and AUC per epoch (training and validation) from history.csv rows; nothing without rows."""
    if not rows:
        return
    fig = Figure(figsize=(9, 3.2))
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("loss", "auc")):
        for prefix in ("", "val_"):
            if prefix + key in rows[0]:
                ax.plot([float(r["epoch"]) + 1 for r in rows], [_number(r[prefix + key]) for r in rows], label=prefix + key)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_quality(rows: dict[str, dict], path: Path) -> None:
    """mAP (with the floor) and per-cell AUC (with chance) of every row of the quality bench."""
    names = list(rows)
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    axes[0].bar(names, [rows[n]["map"] for n in names], color="#4477aa")
    axes[0].axhline(rows["floor"]["map"], color="#cc3311", ls="--", label="floor")
    axes[0].set_ylim(min(r["map"] for r in rows.values()) - 0.1, 1.0)
    axes[0].set_ylabel("mAP (IoU 0.6)")
    axes[0].legend()
    axes[1].bar(names, [rows[n]["cell_auc"] for n in names], color="#228833")
    axes[1].axhline(0.5, color="#cc3311", ls="--", label="chance")
    axes[1].set_ylim(0.4, 1.0)
    axes[1].set_ylabel("per-cell macro AUC")
    axes[1].legend()
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
