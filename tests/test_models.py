"""Model registry, SHCNN (vote, saliency) and STRCN (RCL, balanced loss).

Expected numbers are worked out by hand in the comments, or taken from the
papers' own tables, never from the code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import papers_dir
from mepipe.featurestore import FEATURES
from mepipe.train.models import (
    RCL,
    SHCNN,
    STRCN,
    BalancedLoss,
    balanced_loss,
    create_model,
    get_recipe,
    list_models,
    register_model,
    saliency,
    vote,
)
from mepipe.train.models import registry

torch.set_num_threads(1)


def _tiny_input(name: str, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *get_recipe(name).min_input_shape, generator=torch.Generator().manual_seed(0))


# --- registry --------------------------------------------------------------------------------


def test_registry_lists_the_papers_models():
    assert list_models() == ["clfm", "kim2017", "lfm", "nag2019", "shcnn", "strcn-a", "strcn-g"]


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {n_params:,} parameters (defaults, 3 classes)")
    logits = model(_tiny_input(name))
    assert logits.shape == (2, 3)
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    auxiliary = tuple(getattr(model, "AUX_PREFIXES", ()))  # heads trained only by a stage or auxiliary loss
    for pname, param in model.named_parameters():
        if pname.startswith(auxiliary):
            continue
        assert param.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}.{pname} has a non-finite gradient"
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", list_models())
def test_recipe_reads_exactly_what_its_stages_read(name):
    """A recipe lists no feature it does not read (the old STRCN-A spec named one training never read)."""
    recipe = get_recipe(name)
    assert recipe.name == name
    assert set(recipe.reads) == {f for stage in recipe.stages for f in stage.items.reads}
    assert set(recipe.reads) <= set(FEATURES)
    assert create_model(name, num_classes=5)(_tiny_input(name)).shape == (2, 5)


PAPER_FILES = {"shcnn": "miao2019-shallow-cnn-optical-flow.txt", "kim2017": "kim2017-expression-states-cnn-lstm.txt",
               "lfm": "choi2020-landmark-feature-maps.txt", "clfm": "choi2020-landmark-feature-maps.txt"}
"""The networks whose paper (in ../shared/papers) prints its DOI in the header; Xia's and Nag's texts do not."""


@pytest.mark.parametrize("name", sorted(PAPER_FILES))
def test_recipe_doi_is_the_one_the_paper_prints(name):
    import re

    folder = papers_dir()
    if folder is None:
        pytest.skip("the papers are not beside the repository (../shared/papers)")
    header = (folder / PAPER_FILES[name]).read_text()[:2000]
    printed = re.search(r"(?:DOI:?|Digital Object Identifier)\s*(10\.\d+/)\s*(\S+)", header)
    assert printed and get_recipe(name).doi == printed.group(1) + printed.group(2)


def test_create_model_rejects_unknown_names_and_kwargs():
    with pytest.raises(KeyError, match="known models: clfm, kim2017, lfm, nag2019, shcnn, strcn-a, strcn-g"):
        create_model("shcnn2")
    with pytest.raises(TypeError, match="n_map"):
        create_model("strcn-g", n_map=16)


def test_register_model_rejects_duplicates_and_var_kwargs(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    recipe = get_recipe("shcnn")
    with pytest.raises(ValueError, match="already registered"):
        register_model("shcnn", recipe=recipe)(lambda: nn.Linear(1, 2))

    def loose(**kwargs):
        return nn.Linear(1, 2)

    with pytest.raises(TypeError, match="kwargs"):
        register_model("shcnn", recipe=recipe)(loose)
    with pytest.raises(ValueError, match="differs"):
        register_model("other", recipe=recipe)
    with pytest.warns(UserWarning, match="registered again"):  # a reloaded module
        register_model("shcnn", recipe=recipe)(registry._REGISTRY["shcnn"].factory)


# --- SHCNN -----------------------------------------------------------------------------------


def test_shcnn_parameter_count_by_hand():
    model = SHCNN(num_classes=3, in_chans=3, input_size=16, widths=(2, 3, 4), kernel_size=3, hidden=5)
    # conv 3->2: 3*2*9+2 = 56; 2->3: 2*3*9+3 = 57; 3->4: 3*4*9+4 = 112;
    # 16 / 2^3 = 2 -> flat 4*2*2 = 16; FC 16*5+5 = 85; output 5*3+3 = 18. Total 328.
    assert sum(p.numel() for p in model.parameters()) == 328
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    with pytest.raises(ValueError, match=r"expects input \(B, 3, 16, 16\)"):
        model(torch.zeros(1, 3, 17, 16))


def test_shcnn_uses_leaky_relu_002():
    slopes = {m.negative_slope for m in create_model("shcnn").modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.02}


def test_vote_majority_and_apex_tie_break():
    def logits(classes, n=3):
        return torch.eye(n)[classes]  # one-hot rows: frame t predicts classes[t]

    assert vote(logits([2, 2, 0, 1, 2]), apex_index=3) == 2  # clear majority ignores the apex
    assert vote(logits([0, 1, 1, 0]), apex_index=2) == 1  # 2-2 tie -> apex frame's class
    assert vote(logits([0, 1, 1, 0]), apex_index=0) == 0
    assert vote(logits([0, 0, 1, 1, 2]), apex_index=4) == 2  # tie, apex outside it: literal Miao rule
    assert vote(np.array([[0.1, 0.9]]), apex_index=0) == 1
    with pytest.raises(ValueError, match="apex_index"):
        vote(logits([0, 1]), apex_index=2)


def test_saliency_reproduces_miao_table_2():
    # Table 2, Example 1: o = (1, 3, 10) -> M = 10, V = (0.21, 0.26, 0.53);
    # row 3 of dV_i/do_j is (-0.011, -0.014, 0.025). An identity "network" makes I = o.
    grad = saliency(nn.Identity(), torch.tensor([[1.0, 3.0, 10.0]]), target=2)
    assert grad.numpy() == pytest.approx(np.array([[-0.011, -0.014, 0.025]]), abs=6e-4)
    # Example 2: o = (1, 7, 100): the original dS/do vanishes (1e-41 and below, 0 in
    # float32 at the output's own entry) while the improved map is (-0.0012, -0.0013, 0.0025).
    o = torch.tensor([[1.0, 7.0, 100.0]])
    assert saliency(nn.Identity(), o, target=2).numpy() == pytest.approx(
        np.array([[-0.0012, -0.0013, 0.0025]]), abs=6e-5)
    assert saliency(nn.Identity(), o, target=2, shrink=False).abs().max() < 1e-30


def test_saliency_of_a_linear_model_follows_eq_12():
    # o = W x with W = [[1, 0], [0, 2], [1, 1]] and x = (2, 1): o = (2, 2, 3), M = 3,
    # V = softmax(2/3, 2/3, 1). Eq. 12: dV_j/dx = (1/M) V_j (W_j - sum_k V_k W_k).
    layer = nn.Linear(2, 3, bias=False)
    weights = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weights, dtype=torch.float32))
    e = np.exp(np.array([2, 2, 3]) / 3)
    v = e / e.sum()
    for j in range(3):
        expected = v[j] * (weights[j] - v @ weights) / 3
        got = saliency(layer, torch.tensor([[2.0, 1.0]]), target=j)
        assert got.numpy()[0] == pytest.approx(expected, abs=1e-6)
    assert layer.weight.grad is None  # parameters untouched


class _LeftHalf(nn.Module):
    """Logits from the left half of the image only."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 4, 3)

    def forward(self, x):
        return self.fc(x[..., :4].flatten(1))


def test_saliency_is_zero_where_the_output_cannot_look():
    torch.manual_seed(0)
    grad = saliency(_LeftHalf(), torch.randn(2, 3, 8, 8))
    assert grad.shape == (2, 3, 8, 8)
    assert torch.all(grad[..., 4:] == 0) and grad[..., :4].abs().sum() > 0


def test_saliency_on_shcnn_keeps_shape_and_mode():
    model = create_model("shcnn").train()
    x = torch.randn(2, 3, 112, 112)
    grad = saliency(model, x, target=torch.tensor([0, 2]))
    assert grad.shape == x.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="target"):
        saliency(model, x, target=3)


# --- STRCN -----------------------------------------------------------------------------------


def test_rcl_shares_one_recurrent_weight_over_three_steps():
    rcl = RCL(4, 6, steps=3)
    convs = [m for m in rcl.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2  # one feed-forward 1x1, one recurrent 3x3
    assert rcl.recurrent.weight.shape == (6, 6, 3, 3) and rcl.feedforward.weight.shape == (6, 4, 1, 1)
    calls = []
    rcl.recurrent.register_forward_hook(lambda *args: calls.append(1))
    rcl(torch.randn(2, 4, 5, 5))
    assert len(calls) == 3
    # 4*6 (1x1) + 6*6*9 (3x3) + 4 batch norms x (6 scales + 6 shifts) = 24 + 324 + 48 = 396.
    assert sum(p.numel() for p in rcl.parameters()) == 396


def test_rcl_unrolls_eq_6_7():
    torch.manual_seed(0)
    rcl = RCL(3, 4, steps=3).eval()  # fresh batch norm in eval mode: x / sqrt(1 + eps)
    u = torch.randn(1, 3, 6, 6)
    bn = 1 / math.sqrt(1 + 1e-5)
    wf, wr = rcl.feedforward.weight.detach(), rcl.recurrent.weight.detach()
    drive = F.conv2d(u, wf)
    v = torch.relu(bn * drive)
    for _ in range(3):
        v = torch.relu(bn * (drive + F.conv2d(v, wr, padding=1)))
    assert torch.allclose(rcl(u), v, atol=1e-6)


def test_strcn_parameter_count_and_pools_by_hand():
    model = STRCN(num_classes=3, in_chans=2, n_maps=4, steps=3)
    # conv1 2*4*25 + BN 8 = 208; each RCL 4*4 + 4*4*9 + 4 BNs * 8 = 192, x4 = 768;
    # classifier 4*3 + 3 = 15. Total 991.
    assert sum(p.numel() for p in model.parameters()) == 991
    pools = [m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools == [(4, 4), (4, 4), (4, 4), (2, 2)]
    pools_a = [m.kernel_size for m in create_model("strcn-a", n_maps=4).modules() if isinstance(m, nn.MaxPool2d)]
    assert pools_a == [(4, 1), (4, 1), (4, 4), (2, 2)]
    # Smallest input: 4 (5x5 conv, no padding) + 4*4*4*2 = 132 per axis for G; 4 + 1*1*4*2 = 12 along T for A.
    assert get_recipe("strcn-g").min_input_shape == (2, 132, 132)
    assert get_recipe("strcn-a").min_input_shape == (3, 132, 12)
    with pytest.raises(ValueError, match="H >= 132"):
        model(torch.zeros(2, 2, 131, 200))


def test_strcn_a_takes_the_paper_sized_appearance_matrix():
    # 30% of 64x48 pixels = 922 rows, T = 30 frames.
    model = create_model("strcn-a", n_maps=8).eval()
    assert model(torch.zeros(1, 3, 922, 30)).shape == (1, 4)


def test_balanced_loss_by_hand():
    # N = 3, targets (0, 0, 1): K = 2 classes present, beta = 3 / (2 * 2) = 0.75 for class 0
    # and 3 / (2 * 1) = 1.5 for class 1.
    # Sample 1, logits (0, 0, 0): p = (1/3, 1/3, 1/3).   Sample 3 likewise, target 1.
    # Sample 2, logits (ln 2, 0, 0): p = (1/2, 1/4, 1/4), target 0.
    # Eq. 9 (one-vs-rest): -log p_t = -ln p_y - sum_{c != y} ln(1 - p_c)
    #   samples 1, 3: ln 3 + 2 ln 1.5 = 1.9095425;  sample 2: ln 2 + 2 ln(4/3) = 1.2685113
    #   L = (0.75 + 1.5) * 1.9095425 + 0.75 * 1.2685113 = 5.2478541
    # Weighted cross-entropy: L = 2.25 ln 3 + 0.75 ln 2 = 2.9917381
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0], [0.0, 0.0, 0.0]])
    targets = torch.tensor([0, 0, 1])
    assert balanced_loss(logits, targets).item() == pytest.approx(5.2478541, abs=1e-5)
    assert balanced_loss(logits, targets, one_vs_rest=False).item() == pytest.approx(2.9917381, abs=1e-5)
    assert balanced_loss(logits, targets, reduction="mean").item() == pytest.approx(5.2478541 / 3, abs=1e-5)
    per_sample = balanced_loss(logits, targets, reduction="none")
    assert per_sample.numpy() == pytest.approx([0.75 * 1.9095425, 0.75 * 1.2685113, 1.5 * 1.9095425], abs=1e-5)
    assert BalancedLoss(one_vs_rest=False)(logits, targets).item() == pytest.approx(2.9917381, abs=1e-5)


def test_balanced_loss_is_plain_cross_entropy_on_a_balanced_batch():
    torch.manual_seed(0)
    logits = torch.randn(4, 3)
    targets = torch.tensor([0, 1, 0, 1])  # equal counts -> beta = 4 / (2 * 2) = 1
    expected = F.cross_entropy(logits, targets, reduction="sum")
    assert balanced_loss(logits, targets, one_vs_rest=False).item() == pytest.approx(expected.item(), rel=1e-6)


def test_balanced_loss_is_stable_for_confident_logits():
    logits = torch.tensor([[60.0, -60.0, 0.0], [0.0, 80.0, -80.0]], requires_grad=True)
    loss = balanced_loss(logits, torch.tensor([0, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="targets"):
        balanced_loss(logits.detach(), torch.tensor([0, 3]))
