"""The training side is driven by recipes: a new network is one file, the trainer names no model, and training
names store features only through their definitions."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import train_cli
from mepipe.train.models import list_models
from mepipe.train.report import read_report

TRAIN = Path(__file__).resolve().parents[1] / "train"

TRAINER = sorted(str(p.relative_to(TRAIN)) for p in TRAIN.rglob("*.py") if p.relative_to(TRAIN).parts[0] != "models")
"""The trainer's modules: every module of ``train/`` but the networks' own (``train/models/``)."""

OWNED_ELSEWHERE = {"models/kim2017_loss.py": {"state"}}
"""Literals in modules another change is rewriting, left for it: Kim's loss names its ``state`` argument in errors."""


def test_an_eighth_network_in_one_file_trains_under_loso(toy_network, small_store, tmp_path):
    assert "toy-curve" in list_models()
    out = tmp_path / "toy"
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "toy-curve", "--store", str(small_store), "--labels", "samm-3", "--protocol", "loso",
        "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    report = read_report(out)
    assert [f["name"] for f in report["folds"]] == ["demo/001", "demo/002"]  # LOSO over the demo's two subjects
    assert all(f["epochs"] == 1 and f["inputs"]["stages"][0]["shape"] == [1, 16] for f in report["folds"])
    assert report["n_test_clips"] == 6 and report["parameters"]["recipe"]["doi"] == "10.0000/toy"
    assert (out / "checkpoints" / "fold-demo_001.pt").exists()


def test_a_store_lacking_a_feature_is_refused_before_any_fold(small_store, tmp_path):
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "shcnn", "--store", str(small_store), "--labels", "samm-3", "--device", "cpu",
        "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "shcnn reads flow_first_each, which the store lacks" in result.output
    assert f"--store {small_store} --features flow_first_each`" in result.output
    assert not (tmp_path / "run").exists()


def _string_literals(path: Path) -> set[str]:
    """String constants of a module's code (docstrings, which may show examples, and the Python names an
    ``__all__`` lists left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    exported = {id(name) for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                for name in ast.walk(node.value)}
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings | exported}


@pytest.mark.parametrize("module", TRAINER)
def test_the_trainer_names_no_model(module):
    """Outside ``train/models/``, no code branches on (or keys a table by) a model's name."""
    named = sorted(set(list_models()) & _string_literals(TRAIN / module))
    assert not named, f"train/{module} names models {named}"


@pytest.mark.parametrize("module", sorted(str(p.relative_to(TRAIN)) for p in TRAIN.rglob("*.py")))
def test_training_names_features_through_their_definitions(module):
    """No string in train/ spells a store feature's name: code refers to ``features.FLOW_FIRST_EACH`` (or its
    ``.name``), so renaming a feature or mistyping one cannot pass unnoticed."""
    from mepipe.featurestore.features import FEATURES

    spelt = sorted(set(FEATURES) & _string_literals(TRAIN / module) - OWNED_ELSEWHERE.get(module, set()))
    assert not spelt, f"train/{module} spells feature names {spelt}; use their FeatureDef"


def test_the_literal_check_sees_a_spelt_feature_name(tmp_path):
    """The check above finds a feature name in code, but not in a docstring or an ``__all__``."""
    module = tmp_path / "m.py"
    module.write_text('"""heatmap"""\n__all__ = ["heatmap"]\nREADS = ("flow_first_each",)\n')
    assert _string_literals(module) == {"flow_first_each"}


def test_train_never_imports_the_pipeline():
    offenders = [str(p.relative_to(TRAIN)) for p in TRAIN.rglob("*.py") if "mepipe.pipeline" in p.read_text()]
    assert not offenders, offenders


def test_recipe_options_default_to_the_paper_and_are_checked():
    from mepipe.train.models import get_recipe
    from mepipe.train.recipe import RunOptions
    from mepipe.train.run import RunParams

    recipe = get_recipe("kim2017")
    all_terms = ("E1", "E2", "E3", "E4", "E5")
    assert dict(recipe.resolve_choices(())) == {"terms": all_terms, "means": "training-set", "augmentation": "grid",
                                                "variants": 0}
    assert dict(recipe.resolve_choices((("means", "batch"), ("variants", "4"), ("terms", "e2, E1")))) == {
        "terms": ("E1", "E2"), "means": "batch", "augmentation": "grid", "variants": 4}
    with pytest.raises(ValueError, match="no recipe option 'mean'.*terms, means, augmentation, variants"):
        recipe.resolve_choices((("mean", "batch"),))
    with pytest.raises(ValueError, match="must be one of training-set, batch"):
        recipe.resolve_choices((("means", "epoch"),))
    with pytest.raises(ValueError, match="takes an integer"):
        recipe.resolve_choices((("variants", "all"),))
    with pytest.raises(ValueError, match="no recipe option"):
        RunParams(model="shcnn", store="s", labels="samm-3", recipe_options=(("means", "batch"),))
    options = RunParams(model="kim2017", store="s", labels="samm-3", recipe_options=(("means", "batch"),)).options()
    means = next(c for c in recipe.choices if c.name == "means")
    assert options.choice(means) == "batch" and RunOptions().choice(means) == "training-set"
    assert all(d["reason"] for d in recipe.describe()["deviations"])


def test_train_refuses_an_unknown_recipe_option_in_one_line(small_store, tmp_path):
    result = CliRunner().invoke(train_cli(), [
        "train", "--model", "kim2017", "--store", str(small_store), "--labels", "samm-3", "--out", str(tmp_path / "r"),
        "--recipe-option", "means=sometimes"])
    assert result.exit_code == 2 and "means must be one of training-set, batch" in result.output


def test_the_loop_calls_the_epoch_hook_before_each_epochs_batches():
    import torch

    from mepipe.train.loop import TrainParams, train_model

    seen = []
    model = torch.nn.Linear(1, 2)
    from mepipe.train.inputs.batches import Item

    data = [Item(x=torch.ones(2, 1), y=torch.tensor([0, 1]), clip=torch.tensor([0, 1]))] * 3

    def objective(model, batch, generator):
        seen.append("batch")
        logits = model(batch.x)
        return torch.nn.functional.cross_entropy(logits, batch.y), logits, batch.y

    train_model(model, data, TrainParams(epochs=2, batch_size=2, lr=0.1, progress=False), torch.device("cpu"),
                objective=objective, before_epoch=lambda epoch: seen.append(epoch))
    assert seen == [0, "batch", "batch", "batch", 1, "batch", "batch", "batch"]


@pytest.mark.parametrize("before", [False, True])
def test_the_loop_trains_with_subnormals_flushed_and_restores_the_mode_after(before):
    """Subnormal weights (what weight decay leaves of weights without a data gradient) slow every convolution
    several times on x86 CPUs; while training they count as zero, and the caller's mode comes back after."""
    import torch

    from mepipe.train.inputs.batches import Item
    from mepipe.train.loop import SUBNORMAL, TrainParams, flushing_denormals, train_model

    seen = []

    def objective(model, batch, generator):
        seen.append(float((torch.tensor([SUBNORMAL]) * 1.0).item()))
        logits = model(batch.x)
        return torch.nn.functional.cross_entropy(logits, batch.y), logits, batch.y

    torch.set_flush_denormal(before)
    try:
        assert flushing_denormals() is before
        data = [Item(x=torch.ones(2, 1), y=torch.tensor([0, 1]), clip=torch.tensor([0, 1]))]
        train_model(torch.nn.Linear(1, 2), data, TrainParams(epochs=1, batch_size=2, lr=0.1, progress=False),
                    torch.device("cpu"), objective=objective)
        assert seen == [0.0]
        assert flushing_denormals() is before
    finally:
        torch.set_flush_denormal(False)
