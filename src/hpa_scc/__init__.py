"""hpa-scc: Human Protein Atlas single-cell classification, end to end.

One subpackage per stage; data flows one way, every import points to the same or a lower floor:
core (1) -> data (2) -> segment, submission, model (3) -> crops, metrics, report (4) ->
synth, predict, train (5) -> evaluate (6) -> bench (7) -> app (8).
Importing the package does no work; TensorFlow loads only with the stages that need it
(model, train, predict), which the command line imports only for the commands that use them.
"""

__version__ = "0.1.0"
