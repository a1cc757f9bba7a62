"""The public API for your own model: the README's snippet runs as written; datasets, folds and plugins."""
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mepipe.featurestore import open_store
from mepipe.train import api
from mepipe.train.models import registry

from conftest import train_cli

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- snippet: own-model"


def readme_snippet() -> str:
    """The first python block after the README's own-model marker, exactly as printed."""
    text = README.read_text()
    after = text[text.index(MARKER):]
    match = re.search(r"```python\n(.*?)```", after, re.S)
    assert match, "no python block after the own-model marker"
    return match.group(1)


@pytest.fixture
def clean_registry(monkeypatch):
    """Models registered by a test are forgotten after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


@pytest.fixture
def demo_cwd(small_store, tmp_path, monkeypatch):
    """A working folder whose data/stores/demo.zarr is (a copy of) the small demo store, as the README assumes."""
    shutil.copytree(small_store, tmp_path / "data" / "stores" / "demo.zarr")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_readme_snippet_runs_as_written(demo_cwd, clean_registry, capsys):
    snippet = readme_snippet()
    assert 12 <= len(snippet.strip().splitlines()) <= 20
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(snippet, "README.md", "exec"), namespace)
    report, data, fold = namespace["report"], namespace["data"], namespace["fold"]
    assert (demo_cwd / "runs" / "curve" / "report.json").is_file()
    assert report["model"] == "curve" and 0.0 <= report["uf1"] <= 1.0
    assert report["parameters"]["recipe"]["stages"][0]["items"] == "FeatureItems"
    assert len(report["folds"]) == 2  # two subjects in the small demo store: leave-one-subject-out
    assert data.classes == ["negative", "positive", "surprise"] and data[0].x.shape == (1 + 68 * 2, 16)
    assert tuple(fold.train[0].x.shape) == (1, 16)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("demo/001 3 3 torch.Size([1, 16])")


@pytest.mark.slow
def test_fold_standardisation_is_fitted_on_the_training_clips_only(small_store, clean_registry):
    from torch import nn

    class Net(nn.Module):
        def __init__(self, num_classes: int = 3):
            super().__init__()
            self.head = nn.Linear(1, num_classes)

        def forward(self, x):
            return self.head(x.mean(-1))

    api.register("mean-intensity", Net, features=("intensity",), length=8, epochs=1)
    store = open_store(small_store)
    for fold in api.folds(str(small_store), model="mean-intensity", labels="samm-3", protocol="loso"):
        curves = [np.interp(np.linspace(0, 23, 8), np.arange(24), store.read("intensity", s))
                  for s in fold.train.samples]
        mean = float(np.mean(curves))
        assert fold.statistics.standardiser.mean == pytest.approx((mean,), rel=1e-6)
        assert not set(fold.train.samples) & set(fold.test.samples)
        assert fold.test.standardiser is fold.train.standardiser
        raw = fold.test.raw(0)
        np.testing.assert_allclose(fold.test[0].x.numpy(), (raw - mean) / fold.train.standardiser.std[0],
                                   rtol=1e-5)


def test_feature_dataset_items_are_channels_first_and_resampled(small_store):
    store = open_store(small_store)
    data = api.FeatureDataset(str(small_store), ["landmarks"], length=5)
    sample = data.samples[1]
    item = data[1].x.numpy()
    landmarks = store.read("landmarks", sample).astype(np.float64)
    first, last = landmarks[0].reshape(-1), landmarks[-1].reshape(-1)
    assert item.shape == (136, 5) and data[1].y == -1
    np.testing.assert_allclose(item[:, 0], first, rtol=1e-6)  # landmark k's x is channel 2k, its y 2k + 1
    np.testing.assert_allclose(item[:, -1], last, rtol=1e-6)
    middle = landmarks[11] * 0.5 + landmarks[12] * 0.5  # 24 frames resampled to 5: sample 2 sits at frame 11.5
    np.testing.assert_allclose(item[:, 2], middle.reshape(-1), rtol=1e-5)
    with pytest.raises(KeyError, match="unknown feature 'landmark'"):
        api.FeatureDataset(str(small_store), ["landmark"])


def test_register_refuses_a_factory_without_num_classes(clean_registry):
    from torch import nn

    with pytest.raises(TypeError, match="num_classes"):
        api.register("no-classes", nn.Linear, features=("intensity",))


PLUGIN = '''
from torch import nn
from mepipe.train import api


class Last(nn.Module):
    def __init__(self, num_classes: int = 3, in_channels: int = 1):
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.head(x[..., -1])


api.register("last-frame", Last, features=("intensity", "stddiff"), length=6, epochs=1, batch_size=2)
'''


@pytest.mark.slow
def test_cli_trains_a_plugin_model_under_another_protocol(small_store, tmp_path, clean_registry):
    plugin = tmp_path / "my_models.py"
    plugin.write_text(PLUGIN)
    result = CliRunner().invoke(train_cli(), [
        "train", "--plugin", str(plugin), "--model", "last-frame", "--store", str(small_store), "--labels", "samm-3",
        "--protocol", "lovo", "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "report.json").is_file()
    assert registry.get_recipe("last-frame").reads == ("intensity", "stddiff")
    missing = CliRunner().invoke(train_cli(), ["train", "--plugin", str(tmp_path / "absent.py"), "--model", "x",
                                               "--store", str(small_store), "--labels", "samm-3"])
    assert missing.exit_code == 2 and "absent.py: no such file" in missing.output


def test_installed_entry_points_register_their_models(monkeypatch, clean_registry):
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.syspath_prepend(tests)
    sys.modules.pop("toy_network", None)
    good = importlib.metadata.EntryPoint("toy", "toy_network", registry.ENTRY_POINT_GROUP)
    bad = importlib.metadata.EntryPoint("broken", "no_such_module_here", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [bad, good] if group == registry.ENTRY_POINT_GROUP
                        else [])
    with pytest.warns(UserWarning, match="broken .*failed to import and is skipped"):
        assert registry.load_entry_points() == ["toy"]
    assert "toy-curve" in registry.list_models()
    sys.modules.pop("toy_network", None)
