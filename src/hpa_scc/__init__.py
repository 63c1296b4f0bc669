"""hpa-scc: Human Protein Atlas single-cell classification, end to end.

Stages (one module each, data flows one way):
io -> segment -> crops -> model/train -> predict -> encode/submission -> score.
Importing the package does no work; heavy dependencies (TensorFlow) load only in the
stages that need them.
"""

__version__ = "0.1.0"
