"""hpa-scc: Human Protein Atlas single-cell classification, end to end.

One subpackage per stage; data flows one way, every import points to the same or a lower floor:
core (1) -> data (2) -> segment, submission, model (3) -> crops, metrics, report (4) ->
synth, predict, train (5) -> evaluate (6) -> bench (7) -> app (8).
Importing the package does no work; TensorFlow loads only with the stages that need it
(model, train, predict), which the command line imports only for the commands that use them.

Top-level name: `label_cell(nuclei_pred, cell_pred, mode="exact")`, hpacellseg's post-processing
(see `hpa_scc.segment.label_cell`).
"""

__version__ = "0.1.0"
__all__ = ["label_cell"]


def __getattr__(name: str):
    """`hpa_scc.label_cell`, loaded on first use (so that `import hpa_scc.core...` stays light)."""
    if name == "label_cell":
        from hpa_scc.segment.label_cell import label_cell  # noqa: F401 - the top-level name, on first use

        return label_cell
    raise AttributeError(f"module 'hpa_scc' has no attribute {name!r}")
