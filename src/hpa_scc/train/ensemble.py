"""Ensembles: train.members models of one recipe, seeds seed, seed + 1, ..., averaged into one model.

    hpa-scc train --config configs/cpu.yaml --set train.members=3 ...   # RUN/members/m0..m2, RUN/model.keras

Two trainings of identical settings can differ by 0.085 mAP on a low-expression set (TensorFlow on
a CPU is not deterministic, and whether a subtle class is learnt depends on the run); averaging
the members' outputs keeps what each run learnt. RUN/model.keras is one Keras model (input
float32 B x S x S x C in [0, 255] -> B x 19, the mean of the members' probabilities), so predict,
export and the ONNX engine use it unchanged, at members x the model time per crop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import keras
from keras import layers

from hpa_scc.core.config import Config, save_config
from hpa_scc.core.files import remove_stale_temp_files
from hpa_scc.core.layout import CONFIG_FILE, MEMBERS_DIR, MODEL_FILE
from hpa_scc.model.classifier import load_classifier
from hpa_scc.model.run_stamp import stamp_run
from hpa_scc.train.loop import save_model_atomic
from hpa_scc.train.pseudo import with_train


def member_runs(run: Path, members: int) -> list[Path]:
    """The members' run folders: RUN/members/m0 ... m{members - 1}."""
    return [Path(run) / MEMBERS_DIR / f"m{index}" for index in range(members)]


def member_config(cfg: Config, index: int) -> Config:
    """Member `index`'s recipe: one model (members 1) with seed train.seed + index."""
    return with_train(cfg, members=1, seed=cfg.train.seed + index)


def average_models(paths: list[Path]):
    """One Keras model whose output is the mean of the models saved at `paths` (all of one input
    shape, B x S x S x C -> B x 19); each becomes a named sub-model member_{i}."""
    models = [load_classifier(path) for path in paths]
    for index, model in enumerate(models):
        model.name = f"member_{index}"
    inputs = keras.Input(models[0].input_shape[1:], name="crop")
    outputs = layers.Average(name="probabilities")([model(inputs) for model in models])
    return keras.Model(inputs, outputs, name=f"ensemble_of_{len(models)}")


def train_ensemble(cfg: Config, train_one: Callable[..., dict], images: str | Path, labels_csv: str | Path,
                   masks: str | Path, run: str | Path, cell_labels_csv: Optional[str | Path] = None,
                   prepared: Optional[str | Path] = None, fail_fast: bool = False) -> dict:
    """Train cfg.train.members members with `train_one` (the one-model `train`) into RUN/members/m{i}
    (each resumes; finished members are reused), then write RUN/model.keras, their average.

    RUN/model.keras is rebuilt only when it is missing or older than a member's model.keras.
    Returns {"members": [each member's train result], "history": member 0's history}.
    """
    run = Path(run)
    results = []
    folders = member_runs(run, cfg.train.members)
    for index, folder in enumerate(folders):
        member = member_config(cfg, index)
        print(f"ensemble member {index + 1}/{len(folders)} (train.seed {member.train.seed}): {folder}")
        results.append(train_one(member, images, labels_csv, masks, folder, cell_labels_csv, prepared, fail_fast))
    run.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(run)
    save_config(cfg, run / CONFIG_FILE)
    stamp_run(run, cfg)
    target, sources = run / MODEL_FILE, [folder / MODEL_FILE for folder in folders]
    if not target.is_file() or target.stat().st_mtime < max(path.stat().st_mtime for path in sources):
        save_model_atomic(average_models(sources), target)
    print(f"ensemble of {len(folders)}: {target}")
    return {"members": results, "history": results[0]["history"]}
