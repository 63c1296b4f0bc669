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
from pathlib import Path
from typing import Optional, Sequence

from .errors import BatchFailures, HpaSccError, InputError


def _config(args: argparse.Namespace, extra: Optional[list[str]] = None):
    from .config import load_config

    return load_config(getattr(args, "config", None), list(getattr(args, "set", None) or []) + (extra or []))


def _flag_overrides(args: argparse.Namespace, keys: dict[str, str]) -> list[str]:
    """'section.key=value' overrides for the flags in `keys` ({flag attribute: config key}) that were given."""
    return [f"{key}={getattr(args, flag)}" for flag, key in keys.items() if getattr(args, flag) is not None]


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (default: built-in defaults)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=2")


# ----------------------------------------------------------------------------- commands


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import generate_dataset, summarize

    cfg = _config(args, _flag_overrides(args, {"n_train": "synth.n_train", "n_test": "synth.n_test", "seed": "synth.seed"}))
    out = Path(args.out or cfg.paths.data)
    records = generate_dataset(cfg.synth, out, progress=not args.quiet, workers=args.workers)
    s = summarize(records)
    print(f"synthetic data in {out}: {s['train_images']} train + {s['test_images']} test images, {s['cells']} cells "
          f"({s['negative_cells']} negative), sizes {s['sizes']}, bit depths {s['bits']}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .submission import validate_submission

    report = validate_submission(args.submission, args.sample)
    print(report.summary())
    if report.errors:
        for line in report.errors[: args.max_errors]:
            print(f"error: {line}", file=sys.stderr)
        more = len(report.errors) - args.max_errors
        if more > 0:
            print(f"error: ... and {more} more", file=sys.stderr)
        print(f"INVALID: {len(report.errors)} problem(s) in {args.submission}")
        return 1
    print(f"OK: {args.submission} is a valid submission")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .io import atomic_write_text
    from .score import plot_per_class, result_to_json, score_files

    result = score_files(args.submission, args.solution, iou=args.iou, strict=args.strict)
    if args.per_class:
        print(result.table())
    if args.json:
        atomic_write_text(args.json, result_to_json(result))
    if args.plot:
        plot_per_class(result, args.plot, title=f"{Path(args.submission).name}: mAP {result.map:.4f}")
    print(result.summary())
    print(f"mAP {result.map:.6f}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .score import format_leaderboard, leaderboard

    print(format_leaderboard(leaderboard(args.folder, args.solution, iou=args.iou, strict=args.strict)))
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from .io import read_labels
    from .segment import segment_folder

    extra = [f"segment.backend={args.backend}"] if args.backend else []
    cfg = _config(args, extra)
    ids = list(read_labels(args.ids)) if args.ids else None
    done = segment_folder(args.images, args.out, cfg.segment, ids=ids, workers=args.workers,
                          scheduler=args.scheduler, force=args.force, progress=not args.quiet, fail_fast=args.fail_fast)
    cells = sum(done.values())
    print(f"segmented {len(done)} new image(s), {cells} cells; masks in {args.out}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .io import read_rgby
    from .report import composite, outline_width, overlay, save_rgb
    from .segment import read_masks

    rgby = read_rgby(args.images, args.id)
    seg = read_masks(args.masks, args.id)
    picture = overlay(composite(rgby), seg.cells, (255, 255, 255), outline_width(rgby.shape))
    out = Path(args.out or f"{args.id}_overlay.png")
    save_rgb(out, picture, max_side=args.max_side)
    print(f"{seg.n_cells} cells drawn; picture in {out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    targets = ["encode", "score", "segment", "train", "predict", "predict-memory", "prepare"] if args.what == "all" \
        else [args.what]
    for target in targets:
        if target == "encode":
            bench.bench_encode()
        elif target == "score":
            bench.bench_score(n_images=args.images)
        elif target == "segment":
            from .segment_bench import bench_segment

            bench_segment(_config(args).segment, Path(args.out or "bench/segment"),
                          real=Path(args.real) if args.real else None)
        elif target == "train":
            bench.bench_train()
        elif target == "predict":
            bench.bench_predict(n_images=args.predict_images)
        elif target == "predict-memory":
            bench.bench_predict_memory(args.config if args.config != "configs/cpu.yaml" else "default.yaml")
        elif target == "prepare":
            bench.bench_prepare(args.config if args.config != "configs/cpu.yaml" else "default.yaml",
                                n_images=args.prepare_images)
        elif target == "weak":
            bench.bench_weak_labels(epochs=args.epochs)
        elif target == "quality":
            from .quality import QualitySettings, bench_quality

            settings = QualitySettings(seed=args.seed, n_train=args.train_images, n_test=args.test_images,
                                       sizes=tuple(args.sizes), methods=tuple(args.methods))
            bench_quality(_config(args), settings, Path(args.out or f"bench/quality_seed{args.seed}"))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train

    extra = _flag_overrides(args, {"mode": "train.mode", "epochs": "train.epochs", "pseudo_rounds": "train.pseudo_rounds",
                                  "pseudo_folds": "train.pseudo_folds"})
    if args.size is not None:
        extra += [f"model.size={args.size}", f"crops.size={args.size}"]
    cfg = _config(args, extra)
    if args.masks is None and args.prepared is None:
        raise InputError("train needs --masks (from hpa-scc segment) or --prepared (from hpa-scc prepare)")
    result = train(cfg, args.images, args.labels, args.masks or "", args.out, args.cell_labels, prepared=args.prepared,
                   fail_fast=args.fail_fast)
    last = result["history"][-1] if result["history"] else {}
    print(f"trained {len(result['history'])} epoch(s); last loss {last.get('loss', '-')}; outputs in {args.out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .prepare import prepare_dataset

    index = prepare_dataset(_config(args), args.images, args.labels, args.out, workers=args.workers,
                            scheduler=args.scheduler, force=args.force, progress=not args.quiet,
                            fail_fast=args.fail_fast)
    print(f"prepared {index['images']} image(s), {index['cells']} cells in {len(index['shards'])} shard(s) "
          f"({index['new_shards']} new) in {args.out}; {index['seconds']:.0f} s")
    if index["failed"]:
        raise BatchFailures([tuple(f) for f in index["failed"]], index["images"] + len(index["failed"]))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .model import export_onnx

    info = export_onnx(args.model, tolerance=args.tolerance)
    print(f"exported {info['path']}; max |ONNX - Keras| = {info['max_abs_diff']:.2e}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .predict import predict_submission

    extra = _flag_overrides(args, {"engine": "predict.engine", "cell_weight": "predict.cell_weight",
                                   "batch_size": "predict.batch_size", "workers": "predict.workers"})
    if args.tta:
        extra.append("predict.tta=true")
    cfg = _config(args, extra)
    result = predict_submission(cfg, args.model, args.images, args.sample, args.out, masks=args.masks,
                                force=args.force, progress=not args.quiet, fail_fast=args.fail_fast,
                                allow_failures=args.allow_failures)
    print(f"{result['images']} images ({result['new_images']} new), {result['cells']} cells; submission "
          f"{result['submission']} (valid), per-cell table {result['cells_table']}")
    if result["failures"]:
        from .predict import failures_path

        print(f"the failed images have an empty PredictionString; listed in {failures_path(args.out)}")
        raise BatchFailures(result["failures"], result["images"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(_config(args), quick=args.quick)
    return 0


# ----------------------------------------------------------------------------- parser


def _add_fail_fast(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fail-fast", action="store_true", help="stop at the first bad image (default: do the others, "
                   "then name every bad one and exit with status 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpa-scc", description="Human Protein Atlas single-cell classification pipeline.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="generate the synthetic HPA-like data set")
    _add_config(p)
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
        p.add_argument("--iou", type=float, default=0.6, help="mask IoU threshold (default 0.6)")
        p.add_argument("--strict", action="store_true", help="count detections of unverified classes as false positives")
        p.set_defaults(func=cmd_score if name == "score" else cmd_leaderboard)

    p = sub.add_parser("segment", help="segment images into cached cell/nucleus masks")
    _add_config(p)
    p.add_argument("--images", required=True, help="folder of {ID}_{channel}.png files")
    p.add_argument("--out", required=True, help="mask folder (cache)")
    p.add_argument("--ids", help="CSV with an ID column (e.g. train.csv); default: every ID in --images")
    p.add_argument("--backend", choices=["classical", "hpacellseg"])
    p.add_argument("--workers", type=int, help="local processes (default: segment.workers)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true", help="redo masks that exist")
    p.add_argument("--quiet", action="store_true")
    _add_fail_fast(p)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("show", help="draw cached cell outlines on an RGB composite")
    p.add_argument("id")
    p.add_argument("--images", required=True)
    p.add_argument("--masks", required=True)
    p.add_argument("--out", help="PNG path (default: ID_overlay.png)")
    p.add_argument("--max-side", type=int, default=1024)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("bench", help="print speed/quality figures")
    p.add_argument("what", choices=["encode", "score", "segment", "train", "predict", "predict-memory", "prepare", "weak", "quality",
                                      "all"])
    _add_config(p)
    p.set_defaults(config="configs/cpu.yaml")
    p.add_argument("--seed", type=int, default=0, help="bench quality: seed of the generated set")
    p.add_argument("--train-images", type=int, default=280, help="bench quality: generated training images")
    p.add_argument("--test-images", type=int, default=40, help="bench quality: generated test images")
    p.add_argument("--sizes", type=int, nargs="+", default=[384], help="bench quality: image sides, px")
    p.add_argument("--methods", nargs="*", default=[], choices=["mil", "oof"],
                   help="bench quality: extra weak-label methods to train and score (mil, oof)")
    p.add_argument("--out", help="bench quality / segment: output folder (default bench/quality_seedN, bench/segment; "
                   "reused when present)")
    p.add_argument("--real", help="bench segment: folder of real images with hpacellseg masks (default ../shared/data/hpa_real)")
    p.add_argument("--images", type=int, default=559, help="images for bench score")
    p.add_argument("--epochs", type=int, default=6, help="epochs a round for bench weak")
    p.add_argument("--predict-images", type=int, default=16, help="synthetic 2048² test images for bench predict")
    p.add_argument("--prepare-images", type=int, default=8,
                   help="generated 2048² images for bench prepare (its config: default.yaml unless --config names another)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("train", help="train the EfficientNetB0 classifier on weak labels")
    _add_config(p)
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
    _add_fail_fast(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prepare", help="segment the training images and write their crops once, in shards")
    _add_config(p)
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument("--labels", required=True, help="train.csv (ID,Label): the images to prepare, in order")
    p.add_argument("--out", required=True, help="output folder (re-running resumes: finished shards are kept)")
    p.add_argument("--workers", type=int, help="local processes (default: segment.workers)")
    p.add_argument("--scheduler", help="Dask distributed scheduler address, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true", help="start again when OUT holds shards of other settings")
    p.add_argument("--quiet", action="store_true")
    _add_fail_fast(p)
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("export", help="export RUNDIR/model.keras to ONNX (checked against Keras)")
    p.add_argument("--model", required=True, help="training run folder (RUNDIR)")
    p.add_argument("--tolerance", type=float, default=1e-5, help="max |ONNX - Keras| allowed (default 1e-5)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="per-cell predictions -> submission CSV (+ per-cell table)")
    _add_config(p)
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
    _add_fail_fast(p)
    p.add_argument("--allow-failures", action="store_true", help="write the submission even when images failed: "
                   "empty PredictionString for them, listed in NAME.failures.csv")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="run the whole pipeline on the embedded synthetic data")
    _add_config(p)
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


if __name__ == "__main__":
    sys.exit(main())
