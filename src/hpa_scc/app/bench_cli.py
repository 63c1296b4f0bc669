"""`hpa-scc bench NAME`: one parser per bench (its own flags and default config), one function each.

    hpa-scc bench segment --help
    hpa-scc bench quality --config configs/cpu.yaml --seed 0
    hpa-scc bench all            # every speed bench at its defaults (not quality)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hpa_scc.app.arguments import add_config, config_of
from hpa_scc.bench.codec import bench_encode, bench_score
from hpa_scc.bench.preparation import bench_prepare
from hpa_scc.bench.segmentation import bench_segment
from hpa_scc.synth.appearances import APPEARANCES


def run_encode(args: argparse.Namespace) -> None:
    bench_encode()


def run_score(args: argparse.Namespace) -> None:
    bench_score(n_images=args.images)


def run_segment(args: argparse.Namespace) -> None:
    bench_segment(config_of(args).segment, Path(args.out), real=Path(args.real) if args.real else None)


def run_train(args: argparse.Namespace) -> None:
    from hpa_scc.bench.training import bench_train  # TensorFlow: only for the benches that train

    bench_train()


def run_predict(args: argparse.Namespace) -> None:
    from hpa_scc.bench.inference import bench_predict  # TensorFlow

    bench_predict(config_of(args), n_images=args.images, json_out=Path(args.json) if args.json else None)


def run_predict_memory(args: argparse.Namespace) -> None:
    from hpa_scc.bench.inference import bench_predict_memory  # TensorFlow

    bench_predict_memory(args.config)


def run_prepare(args: argparse.Namespace) -> None:
    bench_prepare(args.config, n_images=args.images)


def generated_set(args: argparse.Namespace, settings_class, **extra):
    """The QualitySettings (`settings_class`) of the flags of `add_generated_set`, plus `extra` fields."""
    return settings_class(seed=args.seed, n_train=args.train_images, n_test=args.test_images, sizes=tuple(args.sizes),
                          **extra)


def run_quality(args: argparse.Namespace) -> None:
    from hpa_scc.bench.quality import QualitySettings, bench_quality  # TensorFlow

    settings = generated_set(args, QualitySettings, methods=tuple(args.methods), appearance=args.appearance,
                             p_express=args.p_express, repeats=args.repeats)
    variant = ("" if args.appearance == "default" else f"_{args.appearance}") + \
        ("" if args.p_express == QualitySettings.p_express else f"_express{args.p_express:g}")
    bench_quality(config_of(args), settings, Path(args.out or f"bench/quality{variant}_seed{args.seed}"))


def run_tta(args: argparse.Namespace) -> None:
    from hpa_scc.bench.tta import bench_tta  # TensorFlow
    from hpa_scc.bench.quality import QualitySettings  # (TensorFlow)

    settings = generated_set(args, QualitySettings)
    bench_tta(config_of(args), settings, Path(args.out or f"bench/tta_seed{args.seed}"))


SPEED_BENCHES = ("encode", "score", "segment", "train", "predict", "predict-memory", "prepare")


def run_all(args: argparse.Namespace) -> None:
    """Every speed bench with its own defaults."""
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    for name in SPEED_BENCHES:
        bench_args = parser.parse_args(["bench", name])
        bench_args.func(bench_args)


def add_generated_set(p: argparse.ArgumentParser, train_images: int) -> None:
    """The recipe and the generated set of the benches that train (quality, tta)."""
    add_config(p, "configs/cpu.yaml")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated set (default 0)")
    p.add_argument("--train-images", type=int, default=train_images,
                   help=f"generated training images (default {train_images})")
    p.add_argument("--test-images", type=int, default=40, help="generated test images (default 40)")
    p.add_argument("--sizes", type=int, nargs="+", default=[384], help="image sides, px (default 384)")


def add_bench_parser(sub) -> None:
    """The `bench` command and one sub-parser per bench under it."""
    bench = sub.add_parser("bench", help="print speed / quality figures (hpa-scc bench NAME --help)")
    benches = bench.add_subparsers(dest="bench", required=True, metavar="NAME")

    p = benches.add_parser("encode", help="mask codec: per-cell encode_mask vs encode_label_image on a 2048² label image")
    p.set_defaults(func=run_encode)

    p = benches.add_parser("score", help="the competition metric on a full-size generated submission")
    p.add_argument("--images", type=int, default=559, help="images of the submission (default 559, the test set)")
    p.set_defaults(func=run_score)

    p = benches.add_parser("segment", help="segmentation vs hpacellseg (real images), vs truth (generated), speed")
    add_config(p, "configs/cpu.yaml")
    p.add_argument("--out", default="bench/segment", help="output folder (default bench/segment; reused)")
    p.add_argument("--real", help="real images with hpacellseg masks (default ../shared/data/hpa_real)")
    p.set_defaults(func=run_segment)

    p = benches.add_parser("train", help="training throughput and input-pipeline headroom at the demo size")
    p.set_defaults(func=run_train)

    p = benches.add_parser("predict", help="inference: model-only, preparation-only and pipeline speed, 559-image projection")
    add_config(p, "configs/cpu.yaml")
    p.add_argument("--images", type=int, default=12, help="generated test images in the test set's size mix (default 12)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.set_defaults(func=run_predict)

    p = benches.add_parser("predict-memory", help="peak RSS of predict on one generated 3072² image")
    p.add_argument("--config", default="default.yaml", help="YAML config file (default: default.yaml)")
    p.set_defaults(func=run_predict_memory)

    p = benches.add_parser("prepare", help="time and disk of prepare, projected to the full training set")
    p.add_argument("--config", default="default.yaml", help="YAML config file (default: default.yaml)")
    p.add_argument("--images", type=int, default=8, help="generated 2048² images (default 8)")
    p.set_defaults(func=run_prepare)

    p = benches.add_parser("quality", help="floor, broadcast, weak-label methods and truth on a generated set")
    add_generated_set(p, train_images=280)
    # the choices are bench.quality.EXTRA_METHODS (not imported here: that module starts TensorFlow)
    p.add_argument("--methods", nargs="*", default=[], choices=["mil", "attn", "oof", "mil-oof", "pseudo", "mil-ens"],
                   help="extra weak-label methods to train and score: mil, attn (mil with attention pooling), "
                        "oof (out-of-fold pseudo-labels), mil-oof (the same from mil fold models), "
                        "pseudo (in-sample pseudo-label rounds), mil-ens (3 mil models averaged; 3x its training)")
    p.add_argument("--appearance", default="default", choices=list(APPEARANCES),
                   help="the generator's look: default, other (smaller, denser, dimmer, blurrier cells; nothing was "
                        "tuned on it) or packed (a confluent field of touching, lobed nuclei)")
    p.add_argument("--p-express", type=float, default=0.75,
                   help="chance that a cell shows each of its image's patterns (default 0.75; the low-expression "
                        "variant: e.g. 0.35)")
    p.add_argument("--repeats", type=int, default=1,
                   help="train every model this many times (train.seed + 0 .. N-1) and give each row the mean and the "
                        "spread (default 1; N x the training time)")
    p.add_argument("--out", help="output folder (default bench/quality[_other][_expressP]_seedN; reused when present)")
    p.set_defaults(func=run_quality)

    p = benches.add_parser("tta", help="one model of the recipe scored with TTA off, 3 views and 8 views")
    add_generated_set(p, train_images=160)
    p.add_argument("--out", help="output folder (default bench/tta_seedN; reused when present)")
    p.set_defaults(func=run_tta)

    p = benches.add_parser("all", help="every speed bench at its defaults: " + ", ".join(SPEED_BENCHES))
    p.set_defaults(func=run_all)
