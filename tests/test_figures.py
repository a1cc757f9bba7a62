"""Pictures state their scales: flow keys and grids, LFM ranges, validation curves, stage lines, class names.

The checks read the figures' artists and texts before anything is saved, so
each fails when the key, scale or label it names is missing; pixels are not
compared.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mepipe.featurestore.views import flow_to_rgb

README = Path(__file__).resolve().parents[1] / "README.md"


def _texts(fig) -> list[str]:
    """Every piece of text of a figure: titles, labels, tick labels, free text, legends."""
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- flow ------------------------------------------------------------------------------------

def _flow_field(h: int = 30, w: int = 40) -> np.ndarray:
    """Upper half moves 2 px right, lower half 1 px down: peak magnitude 2 px."""
    field = np.zeros((2, h, w), np.float32)
    field[0, : h // 2] = 2.0
    field[1, h // 2:] = 1.0
    return field


def test_flow_picture_has_a_colour_key_coded_like_the_flow_and_states_the_grid():
    from mepipe.pipeline.figures import FLOW_KEY_LABEL, draw_flow

    field = _flow_field()
    fig = draw_flow(field, np.full((30, 40), 128, np.uint8), "clip: flow")
    keys = [ax for ax in fig.axes if ax.get_label() == FLOW_KEY_LABEL]
    assert len(keys) == 1, "no colour-wheel key"
    key = keys[0]
    assert "rim = 2.00 px" in key.get_title()
    assert {"right", "left", "up", "down"} <= {t.get_text() for t in key.texts}
    wheel = key.images[0].get_array()
    n = wheel.shape[0]
    # the key's rim to the right and at the bottom has the colour the picture gives 2 px right and 2 px down
    right, down = np.array([2.0, 0.0]), np.array([0.0, 2.0])
    for direction, (row, col) in ((right, (n // 2, n - 2)), (down, (n - 2, n // 2))):
        coded = flow_to_rgb(direction.reshape(2, 1, 1).astype(np.float32), max_magnitude=2.0)[0, 0]
        assert np.abs(wheel[row, col].astype(int) - coded.astype(int)).max() <= 12, (direction, wheel[row, col], coded)
    # the picture itself saturates at the same 2 px as the key's rim
    picture = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(picture, flow_to_rgb(field, max_magnitude=2.0))
    texts = _texts(fig)
    assert any("pixels of the 40\u00d730 flow grid" in t for t in texts), "magnitude colour bar has no unit"
    assert any("longest drawn = 2.00 px" in t for t in texts), "arrow scale missing"
    _close(fig)


# --- LFM -------------------------------------------------------------------------------------

def test_lfm_range_text_names_what_0_and_255_stand_for():
    from mepipe.pipeline.figures import lfm_range_text
    from mepipe.pipeline.stages.lfm import normalise_lfm

    raw = np.array([[0.0, 2.5], [-1.25, 0.5]])
    assert lfm_range_text(raw) == "-1.25 px \u2192 0, +2.50 px \u2192 255"
    coded = normalise_lfm(raw)  # the claim of the label: the extremes code to 0 and 255
    assert coded[0, 1] == 255 and coded[1, 0] == 0 and coded[0, 0] == 127
    assert lfm_range_text(np.array([[0.0, 1.0], [1.0, 0.0]])) == "+0.00 px \u2192 0, +1.00 px \u2192 255"


def test_lfm_picture_titles_each_map_with_its_own_range():
    from mepipe.pipeline.figures import LFM_TICKS, draw_lfm, lfm_range_text
    from mepipe.pipeline.stages.lfm import lfm, normalise_lfm

    rng = np.random.default_rng(0)
    landmarks = rng.normal(50, 10, (6, 5, 2)) + np.linspace(0, 3, 6)[:, None, None] * rng.normal(0, 1, (5, 2))
    raw = {"LFM": lfm(landmarks, 2), "CLFM": lfm(landmarks[:, :3], 2)}
    stored = {name: normalise_lfm(maps) for name, maps in raw.items()}
    fig = draw_lfm(stored, raw, [0, 3], 2, "map", "clip: maps")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    for name in raw:
        for k in (0, 3):
            assert any(t.startswith(f"{name} map {k}:") and lfm_range_text(raw[name][k]) in t for t in titles), \
                (name, k, titles)
    assert len({lfm_range_text(raw["LFM"][k]) for k in (0, 3)}) == 2, "the two maps' ranges should differ here"
    bar = next(ax for ax in fig.axes if not ax.images and ax.get_ylabel())
    ticks = [t.get_text() for t in bar.get_yticklabels()]
    assert ticks == [f"{v}: {text}" for v, text in LFM_TICKS.items()]
    assert "its own map" in bar.get_ylabel() and "no change" not in bar.get_ylabel()
    _close(fig)


def test_lfm_picture_says_when_ranges_are_unknown():
    from mepipe.pipeline.figures import draw_lfm

    stored = {"LFM": np.full((2, 4, 4), 127, np.uint8)}
    fig = draw_lfm(stored, None, [0, 1], 1, "map", "clip")
    assert all("range not recoverable" in ax.get_title() for ax in fig.axes if ax.images)
    _close(fig)


# --- training curves and confusion -----------------------------------------------------------

def _history(stages: tuple[tuple[int, str], ...], validated: bool) -> tuple[list[dict], list[dict]]:
    history, info, epoch = [], [], 0
    for number, (n, name) in enumerate(stages, start=1):
        for k in range(n):
            epoch += 1
            entry = {"epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.1 * k, "seconds": 0.1, "lr": 0.001}
            if len(stages) > 1:
                entry["stage"] = number
            if validated:
                entry.update(val_uf1=0.05 * epoch, val_accuracy=0.04 * epoch)
            history.append(entry)
        info.append({"name": name, "epochs": n})
    return history, info


def _report(folds: list[dict], classes=("negative", "positive", "surprise")) -> dict:
    n = len(classes)
    return {"model": "m", "labels": "l", "protocol": "loso", "accuracy": 0.5, "uf1": 0.4, "uar": 0.45,
            "macro_f1": 0.4, "classes": list(classes), "confusion": np.eye(n, dtype=int).tolist(), "folds": folds}


def test_curves_show_validation_and_the_kept_epoch_and_name_the_stage_boundary():
    from mepipe.train.report import VALIDATION_STYLE, curves_figure

    history, stages = _history(((3, "cnn"), (4, "lstm")), validated=True)
    fold = {"name": "s1", "history": history, "inputs": {"stages": stages},
            "validation": {"people": ["p1", "p2"], "chosen_epoch": {"cnn": 2, "lstm": 3}}}
    fig = curves_figure(_report([fold]))
    assert len(fig.axes) == 3
    dashed = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == VALIDATION_STYLE["ls"]]
    ydata = [list(np.round(line.get_ydata(), 6)) for line in dashed]
    assert [round(h["val_uf1"], 6) for h in history] in ydata
    assert [round(h["val_accuracy"], 6) for h in history] in ydata
    markers = [line for line in fig.axes[2].get_lines() if line.get_marker() == "o"]
    assert sorted(float(m.get_xdata()[0]) for m in markers) == [2.0, 6.0]  # stage 2 epoch 3 = run epoch 6
    texts = _texts(fig)
    assert any("stage 2: lstm" in t for t in texts), texts
    vlines = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert [float(line.get_xdata()[0]) for line in vlines] == [3.5]
    assert "validation" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert any("2 people held out per fold" in t for t in texts)
    _close(fig)


def test_curves_without_validation_have_no_validation_lines():
    from mepipe.train.report import VALIDATION_STYLE, curves_figure

    history, stages = _history(((3, "net"),), validated=False)
    fig = curves_figure(_report([{"name": "s1", "history": history, "inputs": {"stages": stages}}]))
    assert len(fig.axes) == 2
    assert not [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == VALIDATION_STYLE["ls"]]
    assert "validation" not in " ".join(_texts(fig))
    assert not [t for t in _texts(fig) if t.startswith("stage ")]
    _close(fig)


LONG_CLASSES = ("happiness", "repression", "negatively-valenced-other", "surprise")


def test_confusion_picture_shows_long_class_names_whole_inside_the_figure():
    from mepipe.train.report import confusion_figure

    fig = confusion_figure(_report([], classes=LONG_CLASSES))
    fig.tight_layout()
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in labels] == list(LONG_CLASSES)
        for label in labels:
            box = label.get_window_extent(renderer)
            assert box.x0 >= figure_box.x0 - 1 and box.y0 >= figure_box.y0 - 1, (label.get_text(), box)
    _close(fig)


def test_text_confusion_table_keeps_class_names_whole():
    from mepipe.train.report import format_report

    report = {**_report([], classes=LONG_CLASSES), "device": "cpu", "seconds_per_epoch": 0.1, "n_test_clips": 4,
              "store": {"stores": [], "fingerprint": "f"}}
    text = format_report(report)
    header = next(line for line in text.splitlines() if "happiness" in line and "surprise" in line)
    for name in LONG_CLASSES:
        assert f" {name}" in header
    rows = text.splitlines()[text.splitlines().index(header) + 1:][:len(LONG_CLASSES)]
    assert all(len(row) == len(header) for row in rows), "columns do not line up under the names"


# --- help and README cite papers -------------------------------------------------------------

def _all_help() -> dict[str, str]:
    import click

    from mepipe.cli.main import cli

    out = {}

    def walk(command, path):
        out[" ".join(path)] = CliRunner().invoke(cli, [*path[1:], "--help"]).output
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(cli, ["mepipe"])
    return out


def test_help_and_readme_cite_papers_not_the_internal_spec():
    helps = _all_help()
    assert len(helps) > 5
    for command, text in helps.items():
        assert "SPEC" not in text, f"`{command} --help` cites the internal SPEC"
    assert "SPEC" not in README.read_text()


def test_train_help_cites_every_published_model_by_its_recipe_doi():
    from mepipe.train.models import get_recipe, list_models
    from mepipe.train.models.registry import _REGISTRY

    from mepipe.cli.main import cli

    text = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    shipped = [n for n in list_models() if _REGISTRY[n].factory.__module__.startswith("mepipe.")]
    assert len(shipped) >= 7
    for name in shipped:
        doi = get_recipe(name).doi
        assert f"doi:{doi}" in text, f"train --help does not cite {name}'s paper ({doi})"
    assert "Label schemes" in text
    assert "Label schemes" in CliRunner().invoke(cli, ["--help"]).output


def test_readme_label_schemes_table_lists_every_class_and_raw_label():
    from mepipe.train.labels import SCHEMES

    readme = README.read_text()
    section = readme[readme.index("## Label schemes"):]
    section = section[:section.index("\n## ", 1)]
    for scheme in SCHEMES.values():
        row = next((line for line in section.splitlines() if line.startswith(f"| `{scheme.name}` |")), None)
        assert row is not None, f"README's label-scheme table has no row for {scheme.name}"
        cells = [c.strip() for c in row.split("|")]
        assert [c.strip() for c in cells[2].split(",")] == list(scheme.classes), scheme.name
        lowered = row.lower()
        for dataset, mapping in scheme.rules.items():
            if dataset != "*":
                assert f"`{dataset}`" in row, (scheme.name, dataset)
            for raw, target in mapping.items():
                assert raw in lowered and target in lowered, (scheme.name, dataset, raw, target)


# --- on a built store ------------------------------------------------------------------------

@pytest.mark.slow
def test_lfm_picture_of_a_built_store_recovers_every_range(full_store):
    from mepipe.featurestore import open_store
    from mepipe.pipeline.figures import lfm_figure

    fig = lfm_figure(open_store(str(full_store)), "001_1_1")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles and all("px \u2192 255" in t and "not recoverable" not in t for t in titles), titles
    _close(fig)


# --- every picture reads itself (issue 23, item 3) -------------------------------------------

FRAME_PAIR = re.compile("frames? (\\d+) ?\u2192 ?(\\d+)")


def _frame_pairs(texts) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for t in texts for a, b in FRAME_PAIR.findall(t)]


@pytest.mark.slow
@pytest.mark.parametrize("feature", ["flow_onset_apex", "flow_onset_apex_magnified", "flow_first_each",
                                     "flow_consecutive"])
def test_flow_pictures_name_frames_by_their_source_numbers(full_store, feature):
    """The demo numbers its frames from 1000 up, so an index (0..23) can never pass for a frame number."""
    from mepipe.featurestore import open_store
    from mepipe.pipeline.stages import figure

    store = open_store(str(full_store))
    numbers = list(store.read("frame", "001_1_1"))
    fig = figure(feature).draw(store, "001_1_1")
    (start, end), = _frame_pairs([fig._suptitle.get_text()])
    assert start in numbers and end in numbers and start < end and numbers[0] >= 1000
    assert any(t.startswith(f"arrows over frame {start}\n") for t in _texts(fig))
    _close(fig)


@pytest.mark.slow
def test_lfm_maps_carry_landmark_number_ticks_and_frame_numbers(full_store):
    from mepipe.featurestore import open_store
    from mepipe.pipeline.figures import LANDMARK_TICKS, lfm_figure
    from mepipe.pipeline.stages.lfm import CLFM_POINTS

    store = open_store(str(full_store))
    fig = lfm_figure(store, "001_1_1")
    maps = [ax for ax in fig.axes if ax.images]
    lfm, clfm = maps[0], maps[len(maps) // 2]
    assert [t.get_text() for t in lfm.get_xticklabels()] == [str(n) for n in LANDMARK_TICKS]
    assert [t.get_text() for t in clfm.get_yticklabels()] == [str(n) for n in CLFM_POINTS]
    assert lfm.get_ylabel().startswith("landmark i") and maps[-1].get_xlabel().startswith("landmark j")
    numbers = list(store.read("frame", "001_1_1"))
    assert _frame_pairs([ax.get_title() for ax in maps]) and all(
        a in numbers and b in numbers for a, b in _frame_pairs([ax.get_title() for ax in maps]))
    _close(fig)


@pytest.mark.slow
def test_magnified_differences_share_one_colour_bar_in_grey_levels(full_store):
    from mepipe.featurestore import open_store
    from mepipe.pipeline.figures import magnified_figure

    store = open_store(str(full_store))
    fig = magnified_figure(store, "001_1_1")
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    differences = [ax for ax in panels if ax.get_title().startswith("|")]
    assert len(differences) == 2
    assert differences[0].images[0].get_clim() == differences[1].images[0].get_clim()  # one scale for both
    bars = [ax for ax in fig.axes if not ax.get_title() and ax.get_ylabel()]
    assert [b.get_ylabel() for b in bars] == ["absolute difference, grey levels (0-255)"]
    numbers = list(store.read("frame", "001_1_1"))
    apex = numbers[int(store.read("state_index", "001_1_1")[2])]
    assert all(f"frame {apex}" in ax.get_title() for ax in panels)
    _close(fig)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["intensity", "mask"])
def test_curve_and_mask_pictures_label_every_axis_and_scale(full_store, name):
    from mepipe.featurestore import open_store
    from mepipe.pipeline.stages import figure

    fig = figure(name).draw(open_store(str(full_store)), "001_1_1")
    if name == "intensity":
        (ax,) = fig.axes
        assert ax.get_xlabel() == "frame number" and "0..1" in ax.get_ylabel()
        assert all(t.get_text() for t in ax.get_legend().get_texts())
    else:
        bar = next(ax for ax in fig.axes if not ax.get_title())
        assert bar.get_ylabel() == "grey levels, summed over the clip's frames"
        assert "(red)" in fig.axes[0].get_title()
    _close(fig)


def test_curves_legend_names_folds_and_line_styles_only_when_there_are_two():
    from mepipe.train.report import curves_figure

    history, stages = _history(((3, "net"),), validated=False)
    fig = curves_figure(_report([{"name": f"s{k}", "history": history, "inputs": {"stages": stages}}
                                 for k in (1, 2)]))
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 1 and legends[0].get_title().get_text() == "fold"
    assert [t.get_text() for t in legends[0].get_texts()] == ["s1", "s2"]  # no "training": every line is
    _close(fig)


def test_recall_picture_keeps_its_axis_labels_inside_the_figure():
    from mepipe.train.compare import recall_figure

    runs = [{"name": f"run{k}", "model": "shcnn", "classes": list(LONG_CLASSES), "recall": [0.5, 0.2, None, 1.0],
             "figures": {"uar": 0.5}} for k in (1, 2)]
    fig = recall_figure({"runs": runs})
    fig.tight_layout()  # as save_figure lays it out
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    for label in (ax.yaxis.label, ax.xaxis.label):
        box = label.get_window_extent(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1, label.get_text()
    _close(fig)


def test_spotting_picture_labels_its_axes():
    from mepipe.train.report import plot_spotting

    report = {**_report([]), "spotting_auc": 0.8,
              "predictions": [{"sample": "c", "true": 0, "pred": 0, "intensity": [0.1, 0.5, 0.9, None],
                               "span": [0, 1, 1, 0]}]}
    import matplotlib.pyplot as plt

    seen = []
    original = plt.Figure.savefig
    plt.Figure.savefig = lambda self, *a, **k: seen.append(self)
    try:
        plot_spotting(report, "/nonexistent/unused.png")
    finally:
        plt.Figure.savefig = original
    (fig,) = seen
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "intensity (0..1)"
    assert ax.get_title() == "c (true negative, predicted negative)"  # class names, not indices
    assert all(t.get_text() for t in ax.get_legend().get_texts())


def test_saliency_is_drawn_over_the_face_with_a_labelled_scale():
    from mepipe.train.explain import SaliencyResult, saliency_figure

    face = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    gradient = np.zeros((3, 16, 16), np.float32)
    gradient[:, 4:8, 4:8] = 1.0
    result = SaliencyResult("c", "f1", 3, np.zeros((16, 16, 3), np.uint8), gradient, "positive", "positive", 2.0,
                            (1004, 1008), face)
    fig = saliency_figure(result)
    heat_ax = fig.axes[1]
    under, heat = heat_ax.images[:2]
    np.testing.assert_array_equal(under.get_array(), face)
    assert under.get_cmap().name == "gray" and heat.get_alpha() < 1
    assert "over the face (frame 1008)" in heat_ax.get_title()
    assert "frame 1004 \u2192 1008" in fig.axes[0].get_title()
    bar = next(ax for ax in fig.axes if ax.get_ylabel())
    assert bar.get_ylabel() == "|dV/dI| per unit of standardised input"
    _close(fig)
