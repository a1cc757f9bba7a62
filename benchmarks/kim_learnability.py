"""Why Kim 2017 stays at chance on the demo of different people: controlled LOSO experiments (issue 25 item 7).

Builds demo stores with N people (the ``demo`` preset's six, then further
rows of the identity table, so the six are the same people and clips in
every store), runs each condition under LOSO on the stores' first six
people (``folds=6``: a larger store only adds training people), for each
seed, and prints one row per run:

- CNN apex: stage 1 (Fc on the apex state frame) on the test person;
- LSTM: the finished network (the LSTM over every frame), accuracy and UF1;
- Fc on neutral frames (onset and offset state frames) and on apex frames,
  of the training people and of the test person, averaged over folds: a CNN
  that memorised its training clips classifies the training people's
  neutral frames well above chance and the test person's at chance.

A condition is a base run (:data:`BASES`: the learnability test's narrow
quick run of Kim with E1, the same with E1..E5, and the control network
CLFM on the same store) with modifiers (:func:`condition_run`): more
stage-1 epochs (the paper trains 40), a stage 1 without the neutral state
frames or on apex frames only.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/kim_learnability.py --people 6,12 --seeds 0,1 \\
        --conditions e1+cnn40,e1+cnn40+no-neutral --out runs/kim-learnability

Stores are cached under ``--cache`` (default ``data/kim-learnability``);
results are appended to ``OUT/rows.jsonl`` as each run finishes (a rerun
skips the rows already there) and written as ``OUT/summary.md``.
``--signal`` prints instead how much an expression changes a state frame
against a change of person (:func:`pixel_signal`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mepipe.featurestore.features import State
from mepipe.pipeline.build import BuildOptions, run_build
from mepipe.pipeline.demo import write_demo
from mepipe.pipeline.demo.build_config import BUILD_CONFIG
from mepipe.pipeline.demo.identities import IDENTITIES
from mepipe.pipeline.demo.params import PRESETS
from mepipe.pipeline.stages import params_from_mapping
from mepipe.train.clips import ClipTable
from mepipe.train.fold import stage_checkpoint_path
from mepipe.train.inputs.base import Standardiser, fold_sides, image
from mepipe.train.inputs.state_frames import StateFrameDataset, StateFrames
from mepipe.train.labels import apply_scheme
from mepipe.train.loop import load_checkpoint
from mepipe.train.models import create_model, list_models, register_model
from mepipe.train.models.kim2017 import RECIPE, kim2017
from mepipe.train.run import RunParams, run_training

from sequence_models import QUICK_RUNS

LABELS = "samm-3"
TEST_PEOPLE = 6
"""Folds run on every store: its first six people, the demo preset's."""

PEOPLE_ORDER = PRESETS["demo"].identities + tuple(i for i in range(len(IDENTITIES))
                                                  if i not in PRESETS["demo"].identities)
"""Identity rows of subjects 1, 2, ...: the demo's six, then the table's other rows."""

STAGES = ("landmarks", "align", "apex", "kim", "lfm")
"""Build stages: Kim's inputs, and CLFM's for the control network."""

KIM = QUICK_RUNS["kim2017"]
"""The learnability test's narrow quick Kim run (E1, Adam 1e-3, no augmentation, 20 + 40 epochs)."""


class SomeStatesDataset(StateFrameDataset):
    """Only the given states of each clip's state frames (a stage 1 without, say, the neutral onset and offset)."""

    def __init__(self, *args, states: tuple[int, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.states = states
        self.n_states = len(states)

    def locate(self, i: int) -> tuple[int, int]:
        clip, k = divmod(int(i), self.n_states)
        return clip, int(self.states[k])

    def raw(self, i: int) -> np.ndarray:
        clip, state = self.locate(i)
        return image(self.reader[self.samples[clip]][state])


@dataclasses.dataclass(frozen=True)
class SomeStateFrames(StateFrames):
    """Stage-1 items of :class:`SomeStatesDataset`."""

    states: tuple[int, ...] = tuple(State)

    def datasets(self, fold, model):
        build = partial(SomeStatesDataset, fold.clips, states=self.states, **fold.io)
        return fold_sides(fold, build, center=self.center)


def kim_on_states(name: str, states: tuple[int, ...]) -> str:
    """Kim's recipe with a stage 1 on ``states`` only, registered (once) as model ``name``."""
    if name in list_models():
        return name
    cnn, sequence = RECIPE.stages
    items = SomeStateFrames(grid=cnn.items.grid, epochs=cnn.items.epochs, states=states)
    recipe = dataclasses.replace(RECIPE, name=name, stages=(dataclasses.replace(cnn, items=items), sequence))
    register_model(name, recipe=recipe)(kim2017)
    return name


EXPRESSIVE = (State.ONSET_TO_APEX, State.APEX, State.APEX_TO_OFFSET)
"""The state frames that show the expression (onset and offset are neutral)."""

BASES: dict[str, tuple[str, dict]] = {
    "e1": ("kim2017", {**KIM, "recipe_options": (("terms", "E1"),)}),
    "e1-e5": ("kim2017", {**KIM, "recipe_options": (("terms", "E1,E2,E3,E4,E5"),)}),
    "clfm": ("clfm", QUICK_RUNS["clfm"]),
}
"""Base runs of a condition: model and RunParams changes (Kim: the learnability test's, with E1 or E1..E5)."""

STATE_SUBSETS = {"no-neutral": EXPRESSIVE, "apex-only": (State.APEX,)}
"""Modifiers that train Kim's stage 1 on some state frames only (the LSTM still reads every frame)."""


def condition_run(condition: str) -> tuple[str, dict]:
    """(model, RunParams changes) of a condition ``base[+modifier...]``.

    Modifiers: ``cnnN`` (N stage-1 epochs), ``no-neutral`` / ``apex-only`` (:data:`STATE_SUBSETS`).
    """
    base, *modifiers = condition.split("+")
    model, changes = BASES[base]
    changes = dict(changes)
    for modifier in modifiers:
        if modifier in STATE_SUBSETS:
            model = kim_on_states(f"kim2017-{modifier}", STATE_SUBSETS[modifier])
        elif modifier.startswith("cnn"):
            changes["epochs"] = int(modifier[3:])
        else:
            raise SystemExit(f"unknown modifier {modifier!r} in condition {condition!r}")
    return model, changes


def demo_store(people: int, cache: Path) -> Path:
    """The demo with ``people`` subjects, built with Kim's and CLFM's inputs (cached)."""
    store = cache / f"demo-{people}.zarr"
    if (store / "manifest.json").exists():
        return store
    root = cache / f"demo-{people}"
    params = dataclasses.replace(PRESETS["demo"], n_subjects=people, identities=PEOPLE_ORDER[:people])
    write_demo(root, params, overwrite=True)
    report = run_build(BuildOptions(dataset="demo", root=root, store=store, stages=STAGES, workers=1,
                                    params=params_from_mapping(BUILD_CONFIG), progress=False))
    if report.exit_code != 0:
        raise SystemExit(f"building {store} failed: {report.summary()}")
    return store


@torch.no_grad()
def state_accuracy(report: dict, store: Path, out: Path) -> dict[str, float]:
    """Fc accuracy of each fold's stage-1 CNN on neutral and apex state frames, training people vs test person."""
    clips = ClipTable.of(str(store))
    labels, _, _ = apply_scheme(clips.samples, LABELS)
    label_of = dict(zip(clips.samples.loc[labels.index, "sample"].astype(str), labels.to_numpy()))
    hits: dict[str, list[float]] = {}
    for fold in report["folds"]:
        test = set(fold["test"])
        model = load_checkpoint(create_model(report["model"], **fold["model_kwargs"]),
                                stage_checkpoint_path(out, fold["name"], 1)).eval()
        standardiser = Standardiser.from_dict(fold["inputs"]["standardiser"])
        for side, samples in (("train", [s for s in label_of if s not in test]), ("test", sorted(test))):
            dataset = StateFrameDataset(clips, samples, [label_of[s] for s in samples], standardiser=standardiser)
            x = torch.stack([dataset[i].x for i in range(len(dataset))])
            states = np.array([dataset.locate(i)[1] for i in range(len(dataset))])
            truth = np.array([label_of[samples[dataset.locate(i)[0]]] for i in range(len(dataset))])
            right = model.cnn(x).class_logits.argmax(1).numpy() == truth
            neutral = np.isin(states, (State.ONSET, State.OFFSET))
            hits.setdefault(f"neutral_{side}", []).append(float(right[neutral].mean()))
            hits.setdefault(f"apex_{side}", []).append(float(right[states == State.APEX].mean()))
    return {key: float(np.mean(values)) for key, values in hits.items()}


def run(condition: str, people: int, seed: int, cache: Path, out: Path) -> dict:
    """One LOSO run of ``condition`` on the store with ``people`` people; its table row."""
    model, changes = condition_run(condition)
    store = demo_store(people, cache)
    folder = out / f"{condition}-p{people}-s{seed}"
    started = time.perf_counter()
    report = run_training(RunParams(model=model, store=str(store), labels=LABELS, out=str(folder), device="cpu",
                                    seed=seed, folds=TEST_PEOPLE, in_memory=True, overwrite=True, progress=False,
                                    **changes))
    row = {"condition": condition, "people": people, "seed": seed, "accuracy": report["accuracy"],
           "uf1": report["uf1"], "seconds": round(time.perf_counter() - started, 1)}
    if "stage1" in report:
        row["cnn_apex"] = report["stage1"]["accuracy"]
    if model.startswith("kim2017"):
        row.update(state_accuracy(report, store, folder))
    return row


def pixel_signal(store: Path) -> dict[str, float]:
    """RMS differences of the state frames (64x64x3 in [0, 1]): an expression's against a change of person.

    ``expression``: apex minus onset of the same clip; ``people``: the onsets of two clips of
    different people; ``classes``: the apexes of one person's clips of different classes;
    ``jitter``: the onsets of one person's different clips (what alignment leaves).
    """
    clips = ClipTable.of(str(store))
    samples = clips.samples["sample"].astype(str).tolist()
    dataset = StateFrameDataset(clips, samples, [0] * len(samples))
    frames = np.stack([[dataset.raw(c * dataset.n_states + s) for s in State] for c in range(len(samples))])
    person = clips.samples["subject"].astype(str).to_numpy()
    emotion = clips.samples["emotion"].astype(str).to_numpy()
    pairs = [(i, j) for i in range(len(samples)) for j in range(i + 1, len(samples))]

    def rms(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a.astype(float) - b) ** 2)))

    onset, apex = State.ONSET, State.APEX
    return {"expression": float(np.mean([rms(f[apex], f[onset]) for f in frames])),
            "people": float(np.mean([rms(frames[i, onset], frames[j, onset]) for i, j in pairs
                                     if person[i] != person[j]])),
            "classes": float(np.mean([rms(frames[i, apex], frames[j, apex]) for i, j in pairs
                                      if person[i] == person[j] and emotion[i] != emotion[j]])),
            "jitter": float(np.mean([rms(frames[i, onset], frames[j, onset]) for i, j in pairs
                                     if person[i] == person[j]]))}


def markdown(rows: list[dict]) -> str:
    keys = ("cnn_apex", "accuracy", "uf1", "neutral_train", "neutral_test", "apex_train", "apex_test")
    lines = ["| condition | people | seed | CNN apex | LSTM acc | LSTM UF1 | Fc neutral train | Fc neutral test | "
             "Fc apex train | Fc apex test | s |", "|" + " --- |" * 11]
    for r in rows:
        cells = [f"{r[k]:.3f}" if k in r else "" for k in keys]
        lines.append(f"| {r['condition']} | {r['people']} | {r['seed']} | {' | '.join(cells)} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", default="6", help="Comma-separated numbers of demo people (6..15).")
    parser.add_argument("--seeds", default="0,1", help="Comma-separated seeds.")
    parser.add_argument("--conditions", default="e1",
                        help=f"Comma-separated base[+modifier...]: bases {', '.join(BASES)}; modifiers cnnN, "
                             f"{', '.join(STATE_SUBSETS)}.")
    parser.add_argument("--cache", default="data/kim-learnability", help="Folder of the built demo stores.")
    parser.add_argument("--out", default="runs/kim-learnability", help="Folder of the runs and the table.")
    parser.add_argument("--signal", action="store_true",
                        help="Print the state frames' pixel differences (pixel_signal) of each store instead.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache, out = Path(args.cache), Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    if args.signal:
        for people in (int(p) for p in args.people.split(",")):
            signal = pixel_signal(demo_store(people, cache))
            print(f"{people} people: " + ", ".join(f"{k} {v:.3f}" for k, v in signal.items()))
        return
    out.mkdir(parents=True, exist_ok=True)
    log = out / "rows.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(r["condition"], r["people"], r["seed"]) for r in rows}
    for people in (int(p) for p in args.people.split(",")):
        for condition in args.conditions.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                if (condition, people, seed) in done:
                    continue
                row = run(condition, people, seed, cache, out)
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    (out / "summary.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
