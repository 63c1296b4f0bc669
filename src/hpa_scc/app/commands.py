"""One function per `hpa-scc` command: parse nothing, call the stage, print one summary line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpa_scc.app.arguments import config_of, flag_overrides
from hpa_scc.core.config_images import ScoreConfig
from hpa_scc.core.errors import BatchFailures, InputError
from hpa_scc.core.files import atomic_write_text
from hpa_scc.core.layout import failures_path
from hpa_scc.crops.shards import prepare_dataset
from hpa_scc.data.images import read_rgby
from hpa_scc.data.tables import read_labels
from hpa_scc.metrics.competition import result_to_json, score_files
from hpa_scc.metrics.leaderboard import format_leaderboard, leaderboard
from hpa_scc.report.pictures import composite, outline_width, overlay, save_rgb
from hpa_scc.report.plots import plot_per_class
from hpa_scc.segment.cache import read_masks, segment_folder
from hpa_scc.submission.rows import validate_submission
from hpa_scc.synth.dataset import generate_dataset, summarize


def cmd_synth(args: argparse.Namespace) -> int:
    cfg = config_of(args, flag_overrides(args, {"n_train": "synth.n_train", "n_test": "synth.n_test", "seed": "synth.seed"}))
    out = Path(args.out or cfg.paths.data)
    records = generate_dataset(cfg.synth, out, progress=not args.quiet, workers=args.workers)
    s = summarize(records)
    print(f"synthetic data in {out}: {s['train_images']} train + {s['test_images']} test images, {s['cells']} cells "
          f"({s['negative_cells']} negative), sizes {s['sizes']}, bit depths {s['bits']}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
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


def _score_config(args: argparse.Namespace) -> ScoreConfig:
    """The score section of --config, with --iou and --strict applied."""
    return config_of(args, flag_overrides(args, {"iou": "score.iou", "strict": "score.strict"})).score


def cmd_score(args: argparse.Namespace) -> int:
    cfg = _score_config(args)
    result = score_files(args.submission, args.solution, iou=cfg.iou, strict=cfg.strict)
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
    cfg = _score_config(args)
    print(format_leaderboard(leaderboard(args.folder, args.solution, iou=cfg.iou, strict=cfg.strict)))
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    extra = [f"segment.backend={args.backend}"] if args.backend else []
    cfg = config_of(args, extra)
    ids = list(read_labels(args.ids)) if args.ids else None
    done = segment_folder(args.images, args.out, cfg.segment, ids=ids, workers=args.workers,
                          scheduler=args.scheduler, force=args.force, progress=not args.quiet, fail_fast=args.fail_fast)
    cells = sum(done.values())
    print(f"segmented {len(done)} new image(s), {cells} cells; masks in {args.out}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    rgby = read_rgby(args.images, args.id)
    seg = read_masks(args.masks, args.id)
    picture = overlay(composite(rgby), seg.cells, (255, 255, 255), outline_width(rgby.shape))
    out = Path(args.out or f"{args.id}_overlay.png")
    save_rgb(out, picture, max_side=args.max_side)
    print(f"{seg.n_cells} cells drawn; picture in {out}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hpa_scc.train.run import train  # TensorFlow: imported only by the commands that use it

    extra = flag_overrides(args, {"mode": "train.mode", "epochs": "train.epochs", "pseudo_rounds": "train.pseudo_rounds",
                                  "pseudo_folds": "train.pseudo_folds", "members": "train.members"})
    if args.size is not None:
        extra += [f"model.size={args.size}", f"crops.size={args.size}"]
    cfg = config_of(args, extra)
    if args.masks is None and args.prepared is None:
        raise InputError("train needs --masks (from hpa-scc segment) or --prepared (from hpa-scc prepare)")
    result = train(cfg, args.images, args.labels, args.masks or "", args.out, args.cell_labels, prepared=args.prepared,
                   fail_fast=args.fail_fast)
    last = result["history"][-1] if result["history"] else {}
    members = f"{len(result['members'])} members, each " if "members" in result else ""
    print(f"trained {members}{len(result['history'])} epoch(s); last loss {last.get('loss', '-')}; outputs in {args.out}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    index = prepare_dataset(config_of(args), args.images, args.labels, args.out, workers=args.workers,
                            scheduler=args.scheduler, force=args.force, progress=not args.quiet,
                            fail_fast=args.fail_fast)
    print(f"prepared {index['images']} image(s), {index['cells']} cells in {len(index['shards'])} shard(s) "
          f"({index['new_shards']} new) in {args.out}; {index['seconds']:.0f} s")
    if index["failed"]:
        raise BatchFailures([tuple(f) for f in index["failed"]], index["images"] + len(index["failed"]))
    return 0


def cmd_train_segmenter(args: argparse.Namespace) -> int:
    from hpa_scc.train.segmenter import train_segmenter  # TensorFlow

    train_segmenter(args.out, n_images=args.images, steps=args.steps, seed=args.seed, workers=args.workers)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hpa_scc.model.export import export_onnx  # TensorFlow

    info = export_onnx(args.model, tolerance=args.tolerance)
    print(f"exported {info['path']}; max |ONNX - Keras| = {info['max_abs_diff']:.2e}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from hpa_scc.predict.submit import predict_submission  # TensorFlow

    extra = flag_overrides(args, {"engine": "predict.engine", "cell_weight": "predict.cell_weight",
                                   "batch_size": "predict.batch_size", "workers": "predict.workers"})
    if args.tta:
        extra.append("predict.tta=true")
    cfg = config_of(args, extra)
    result = predict_submission(cfg, args.model, args.images, args.sample, args.out, masks=args.masks,
                                force=args.force, progress=not args.quiet, fail_fast=args.fail_fast,
                                allow_failures=args.allow_failures)
    print(f"{result['images']} images ({result['new_images']} new), {result['cells']} cells; submission "
          f"{result['submission']} (valid), per-cell table {result['cells_table']}")
    if result["failures"]:
        print(f"the failed images have an empty PredictionString; listed in {failures_path(args.out)}")
        raise BatchFailures(result["failures"], result["images"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hpa_scc.app.demo import run_demo  # TensorFlow

    run_demo(config_of(args), quick=args.quick)
    return 0
