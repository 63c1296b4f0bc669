"""`hpa-scc` command line: one subcommand per stage, plus `demo` and `bench`.

    hpa-scc --help
    hpa-scc synth --config configs/demo.yaml --out data/demo
    hpa-scc segment --images data/demo/test --out data/demo/masks
    hpa-scc predict --model runs/demo --images data/demo/test --sample data/demo/sample_submission.csv \
        --out submissions/demo.csv --masks data/demo/masks
    hpa-scc validate submissions/demo.csv --sample data/demo/sample_submission.csv
    hpa-scc score submissions/demo.csv --solution data/demo/solution.csv --per-class

Errors caused by input print one line `hpa-scc: error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Optional, Sequence

from hpa_scc.app.arguments import add_config, add_fail_fast
from hpa_scc.app.bench_cli import add_bench_parser
from hpa_scc.app.commands import (cmd_demo, cmd_export, cmd_leaderboard, cmd_predict, cmd_prepare, cmd_score,
                                  cmd_segment, cmd_show, cmd_synth, cmd_train, cmd_train_segmenter, cmd_validate)
from hpa_scc.core.errors import BatchFailures, HpaSccError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpa-scc", description="Human Protein Atlas single-cell classification pipeline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate the synthetic HPA-like data set")
    add_config(p)
    p.add_argument("--out", help="output folder (default: paths.data)")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="check a submission CSV before uploading")
    p.add_argument("submission")
    p.add_argument("--sample", help="sample_submission.csv: check IDs and sizes against it")
    p.add_argument("--max-errors", type=int, default=20)
    p.set_defaults(func=cmd_validate)

    for name, helptext in (("score", "score a submission with the competition metric"),
                           ("leaderboard", "score every CSV in a folder and rank them")):
        p = sub.add_parser(name, help=helptext)
        if name == "score":
            p.add_argument("submission")
            p.add_argument("--per-class", action="store_true", help="print a per-class table")
            p.add_argument("--json", help="write the result as JSON")
            p.add_argument("--plot", help="write a per-class AP bar chart (PNG)")
        else:
            p.add_argument("folder")
        p.add_argument("--solution", required=True, help="solution CSV (truth in the submission layout)")
        add_config(p)
        p.add_argument("--iou", type=float, help="mask IoU threshold (default: score.iou, the competition's 0.6)")
        p.add_argument("--strict", action="store_true", default=None,
                       help="count detections of unverified classes as false positives (default: score.strict)")
        p.set_defaults(func=cmd_score if name == "score" else cmd_leaderboard)

    p = sub.add_parser("segment", help="segment images into cached cell/nucleus masks")
    add_config(p)
    p.add_argument("--images", required=True, help="folder of {ID}_{channel}.png files")
    p.add_argument("--out", required=True, help="mask folder (cache)")
    p.add_argument("--ids", help="CSV with an ID column (e.g. train.csv); default: every ID in --images")
    p.add_argument("--backend", choices=["classical", "unet", "hpacellseg"],
                   help="segmenter (default: segment.backend, unet)")
    p.add_argument("--workers", type=int, help="local processes (default: segment.workers)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true", help="redo masks that exist")
    p.add_argument("--quiet", action="store_true")
    add_fail_fast(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("show", help="draw cached cell outlines on an RGB composite")
    p.add_argument("id")
    p.add_argument("--images", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--out", help="PNG path (default: ID_overlay.png)")
    p.add_argument("--max-side", type=int, default=1024)
    p.set_defaults(func=cmd_show)

    add_bench_parser(sub)

    p = sub.add_parser("train", help="train the EfficientNetB0 classifier on weak labels")
    add_config(p)
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument("--labels", required=True, help="train.csv (ID,Label)")
    p.add_argument("--masks", help="mask folder from hpa-scc segment (not needed with --prepared)")
    p.add_argument("--prepared", help="folder from hpa-scc prepare: crops stream from its shards")
    p.add_argument("--out", required=True, help="run folder (re-running resumes)")
    p.add_argument("--mode", choices=["cells", "image", "truth", "mil"])
    p.add_argument("--cell-labels", help="ID,cell_id,Label table (truth mode)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--pseudo-rounds", type=int)
    p.add_argument("--pseudo-folds", type=int, help=">= 2: out-of-fold pseudo-labels (each fold's model relabels the others' cells)")
    p.add_argument("--size", type=int, help="crop / model input side, px")
    p.add_argument("--members", type=int, help=">= 2: an ensemble of that many trainings (seeds seed + i) in OUT/members, "
                                                "averaged into OUT/model.keras (N x the training and model time)")
    add_fail_fast(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prepare", help="segment the training images and write their crops once, in shards")
    add_config(p)
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument("--labels", required=True, help="train.csv (ID,Label): the images to prepare, in order")
    p.add_argument("--out", required=True, help="output folder (re-running resumes: finished shards are kept)")
    p.add_argument("--workers", type=int, help="local processes (default: segment.workers)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true", help="start again when OUT holds shards of other settings")
    p.add_argument("--quiet", action="store_true")
    add_fail_fast(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train-segmenter", help="train the unet segmenter's U-Net on generated images (no real ones)")
    p.add_argument("--out", required=True, help="weights file, NAME.weights.h5 (the shipped one: "
                   "src/hpa_scc/segment/weights/unet.weights.h5)")
    p.add_argument("--images", type=int, default=400, help="generated training images (default 400)")
    p.add_argument("--steps", type=int, default=3200, help="optimizer steps (default 3200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the images and the weights (default 1: the shipped U-Net)")
    p.add_argument("--workers", type=int, default=2, help="processes generating images (default 2)")
    p.set_defaults(func=cmd_train_segmenter)

    p = sub.add_parser("export", help="export RUNDIR/model.keras to ONNX (checked against Keras)")
    p.add_argument("--model", required=True, help="training run folder (RUNDIR)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |ONNX - Keras| allowed (default 1e-3)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="per-cell predictions -> submission CSV (+ per-cell table)")
    add_config(p)
    p.add_argument("--model", required=True, help="training run folder (RUNDIR with model.keras, config.yaml)")
    p.add_argument("--images", required=True, help="test image folder")
    p.add_argument("--sample", required=True, help="sample_submission.csv (IDs and sizes, in output order)")
    p.add_argument("--out", required=True, help="submission CSV to write (re-running resumes)")
    p.add_argument("--masks", help="mask cache folder (read, and filled for missing IDs); default: segment in memory")
    p.add_argument("--engine", choices=["keras", "onnx"])
    p.add_argument("--cell-weight", type=float, help="weight of the cell score in the blend (0 = image broadcast)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, help="processes preparing images (0 = main process)")
    p.add_argument("--tta", action="store_true", help="average over horizontal and vertical flips")
    p.add_argument("--force", action="store_true", help="discard a journal of an earlier run and start again")
    p.add_argument("--quiet", action="store_true")
    add_fail_fast(p)
    p.add_argument("--allow-failures", action="store_true", help="write the submission even when images failed: "
                   "empty PredictionString for them, listed in NAME.failures.csv")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded synthetic data")
    add_config(p)
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    p.set_defaults(func=cmd_demo)

    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # a truncated PNG is reported once, by hpa-scc
    for noise in ("This model usually expects", "`shuffle=True` was passed", "Your input ran out of data", "In the future `np.object`"):
        warnings.filterwarnings("ignore", message=noise)  # expected with RGBY inputs and tf.data
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BatchFailures as exc:
        for line in exc.lines():
            print(f"hpa-scc: {line}", file=sys.stderr)
        return 1
    except HpaSccError as exc:
        print(f"hpa-scc: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only folder, a full disk: what was written before is kept
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hpa-scc: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hpa-scc: interrupted", file=sys.stderr)
        return 130
