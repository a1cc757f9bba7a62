"""Nag et al. 2019: context contrast, network shapes, length masking, loss and expression states.

Expected numbers are worked out by hand in the comments, never taken from the
code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mepipe.train.models import create_model, get_recipe, list_models, nag2019  # noqa: F401 (registers)
from mepipe.train.models.nag2019 import (
    SEQUENCE_LENGTH,
    ContextContrast,
    MotionNet,
    Nag2019,
    NagOutput,
    SpatialNet,
    StateParams,
    context_contrast,
    intensity_states,
    nag_loss,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> Nag2019:
    torch.manual_seed(0)
    return create_model("nag2019", num_classes=5)


def _inputs(batch: int, steps: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, steps, 8, 64, 64, generator=torch.Generator().manual_seed(seed))


# --- context contrast (eq. 1-3) --------------------------------------------------------------


def test_context_contrast_by_hand_with_identity_and_mean():
    # FM_t = [[1, 2], [3, 4]], FM_t+1 = [[2, 2], [2, 6]]; M_l = identity, M_c = the map's mean
    # everywhere: M_c(FM_t) = 2.5, M_c(FM_t+1) = 3.
    # eq. 1: FM_t - 3            = [[-2, -1], [0, 1]]
    # eq. 2: FM_t - FM_t+1       = [[-1, 0], [1, -2]]
    # eq. 3: FM_t+1 - 2.5        = [[-0.5, -0.5], [-0.5, 3.5]]
    fm_t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    fm_t1 = torch.tensor([[[[2.0, 2.0], [2.0, 6.0]]]])
    out = context_contrast(fm_t, fm_t1, nn.Identity(), lambda m: m.mean(dim=(2, 3), keepdim=True).expand_as(m))
    expected = [[[-2, -1], [0, 1]], [[-1, 0], [1, -2]], [[-0.5, -0.5], [-0.5, 3.5]]]
    assert out.shape == (1, 3, 2, 2)
    assert out[0].tolist() == expected
    with pytest.raises(ValueError, match="equal-shaped"):
        context_contrast(fm_t, fm_t1[..., :1], nn.Identity(), nn.Identity())


def test_context_contrast_module_local_and_dilated_context():
    cc = ContextContrast(1, context_dilation=3)
    assert cc.local.bias is None and cc.context.bias is None
    assert cc.local.dilation == (1, 1) and cc.context.dilation == (3, 3)
    with torch.no_grad():
        cc.local.weight.zero_()
        cc.local.weight[0, 0, 1, 1] = 1.0  # M_l = identity
        cc.context.weight.zero_()
        cc.context.weight[0, 0, 0, 0] = 1.0  # M_c(x)[i, j] = x[i - 3, j - 3] (zero outside)
    fm_t = torch.arange(16.0).reshape(1, 1, 4, 4)  # 0..15 row by row
    fm_t1 = torch.ones(1, 1, 4, 4)
    out = cc(fm_t, fm_t1)
    assert out.shape == (1, 3, 4, 4)
    # eq. 1: FM_t - M_c(ones): M_c(ones) is 1 only at (3, 3), whose shifted source (0, 0) is inside.
    eq1 = fm_t[0, 0].clone()
    eq1[3, 3] -= 1
    assert torch.equal(out[0, 0], eq1)
    assert torch.equal(out[0, 1], fm_t[0, 0] - 1)  # eq. 2
    eq3 = torch.ones(4, 4)
    eq3[3, 3] -= fm_t[0, 0, 0, 0]  # = 1 - 0
    assert torch.equal(out[0, 2], eq3)  # eq. 3


# --- the two CNNs and the network --------------------------------------------------------------


def test_spatial_and_temporal_maps_have_the_papers_sizes():
    fm = SpatialNet()(torch.randn(2, 3, 64, 64))
    assert fm.shape == (2, 128, 8, 8)  # 128 x w/8 x h/8
    assert fm.abs().max() <= 1  # ends with tanh
    motion = MotionNet()(torch.randn(2, 2, 64, 64))
    assert motion.shape == (2, 1, 16, 16)  # w/4
    assert ((motion > 0) & (motion < 1)).all()


def test_a_wider_motion_map_is_linear_and_reaches_the_fusion():
    torch.manual_seed(0)
    wide = MotionNet(widths=(4, 8, 8), out_channels=3)
    with torch.no_grad():
        wide.decode[-1].bias.fill_(5.0)
        motion = wide(torch.randn(2, 2, 64, 64))
    assert motion.shape == (2, 3, 16, 16)
    assert (motion > 1).all()  # no sigmoid: a map, not a likelihood
    net = create_model("nag2019", num_classes=3, widths=(4, 8, 8), fc6=8, feature_channels=4, fused=8, fc=8,
                       hidden=8, motion_channels=3)
    assert net.fuse[0].in_channels == 5 * 4 + 3
    out = net.sequence(_inputs(1, 2))
    out.intensity.sum().backward()
    assert net.temporal.decode[-1].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="out_channels=0"):
        MotionNet(out_channels=0)


def test_sequence_and_forward_shapes(model):
    model.eval()
    x = _inputs(2, 3)
    with torch.no_grad():
        out = model.sequence(x)
        logits = model(x)
    assert isinstance(out, NagOutput)
    assert out.step_logits.shape == (2, 3, 5) and out.intensity.shape == (2, 3)
    assert ((out.intensity > 0) & (out.intensity < 1)).all()
    assert logits.shape == (2, 5)
    assert torch.allclose(logits, out.step_logits[:, -1])
    with pytest.raises(ValueError, match=r"expects input \(B, L >= 1, 8, 64, 64\)"):
        model(torch.zeros(2, 3, 8, 32, 32))
    with pytest.raises(ValueError, match="lengths"):
        model(x, torch.tensor([4, 1]))


def test_lengths_mask_equals_running_the_shorter_sequence_alone(model):
    model.eval()
    x = _inputs(2, 3, seed=1)
    lengths = torch.tensor([3, 2])
    with torch.no_grad():
        batched = model.sequence(x, lengths)
        clip = model(x, lengths)
        alone = model.sequence(x[1:2, :2])
        full = model(x[0:1])
        x_other_padding = x.clone()
        x_other_padding[1, 2] = 100.0
        clip_other_padding = model(x_other_padding, lengths)
    assert torch.allclose(clip[1], alone.step_logits[0, -1], atol=1e-5)
    assert torch.allclose(batched.step_logits[1, :2], alone.step_logits[0], atol=1e-5)
    assert torch.allclose(batched.intensity[1, :2], alone.intensity[0], atol=1e-6)
    assert torch.allclose(clip[0], full[0], atol=1e-5)
    assert torch.allclose(clip, clip_other_padding, atol=1e-5)  # padded steps never matter


def test_gradients_reach_every_parameter_and_print_count(model):
    model.train()
    model.zero_grad()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"nag2019: {n_params:,} parameters (defaults, 5 classes)")
    x, lengths, y = _inputs(2, 2, seed=2), torch.tensor([2, 1]), torch.tensor([0, 3])
    F.cross_entropy(model(x, lengths), y).backward()
    aux = model.AUX_PREFIXES
    assert aux == ("intensity_head.",)
    for name, param in model.named_parameters():
        if name.startswith(aux):
            assert param.grad is None, f"{name} should not be reached by the class logits"
        else:
            assert param.grad is not None, f"{name} got no gradient through forward"
            assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    model.zero_grad(set_to_none=True)
    loss, _ = nag_loss(model.sequence(x, lengths), y, torch.rand(2, 2), lengths=lengths)
    loss.backward()
    head = [(n, p) for n, p in model.named_parameters() if n.startswith(aux)]
    assert head and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in head)


def test_convolutions_are_xavier_initialised(model):
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) > 10
    for conv in convs:
        # Xavier-uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out)); torch's default bound is smaller.
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert conv.weight.abs().max() <= bound
        assert conv.weight.abs().max() > 0.9 * bound  # thousands of draws reach near the edge
        assert conv.bias is None or torch.all(conv.bias == 0)


def test_he_initialisation_draws_each_convolution_from_hes_bound():
    torch.manual_seed(0)
    convs = [m for m in create_model("nag2019", num_classes=3, init="he").modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    for conv in convs:
        # He-uniform for ReLU: U(-b, b), b = sqrt(2) * sqrt(3 / fan_in) = sqrt(6 / fan_in).
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        bound = math.sqrt(6 / fan_in)
        assert conv.weight.abs().max() <= bound
        assert conv.weight.abs().max() > 0.9 * bound
        assert conv.bias is None or torch.all(conv.bias == 0)
    with pytest.raises(ValueError, match="init must be one of xavier, he"):
        create_model("nag2019", init="orthogonal")


def test_from_scratch_only_he_initialisation_lets_the_input_reach_the_gru():
    """Why the spotter departs from the paper's Xavier: untrained, through the CNNs' eight ReLU layers, Xavier's
    GRU inputs barely vary with the input (the paper's CNNs start pre-trained; ours do not)."""
    x = torch.randn(8, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    spread = {}
    for init in ("xavier", "he"):
        torch.manual_seed(0)
        with torch.no_grad():
            spread[init] = float(create_model("nag2019", num_classes=3, init=init).step_features(x).std(0).mean())
    assert spread["he"] > 10 * spread["xavier"], spread


def test_recipe_trains_as_the_paper_says():
    """What a run of nag2019 trains with, as the trainer reads it from the recipe (Nag §3)."""
    from mepipe.train.run import RunParams, stage_train_params

    recipe = get_recipe("nag2019")
    assert recipe.stages[0].items.window == SEQUENCE_LENGTH == 14  # "a sequence of 14 frames"
    (params,) = stage_train_params(RunParams(model="nag2019", store="s", labels="casme2-5"), recipe)
    # RMSProp, lr 1e-4, weight decay 0.005; one 14-frame sequence per batch = one window.
    assert (params.optimizer, params.lr, params.weight_decay, params.batch_size) == ("rmsprop", 1e-4, 0.005, 1)
    assert set(recipe.reads) == {"frames_rgb", "flow_consecutive", "intensity", "frame"}
    assert "nag2019" in list_models()  # registered on import
    assert create_model("nag2019", input_size=32, widths=(4, 8, 8), fc6=8, feature_channels=8, fused=8, fc=16,
                        hidden=16)(torch.rand(1, 2, 8, 32, 32)).shape == (1, 5)
    with pytest.raises(ValueError, match="multiple of 8"):
        create_model("nag2019", input_size=36)
    with pytest.raises(TypeError, match="width"):
        create_model("nag2019", width=3)
    grey = create_model("nag2019", num_classes=3, in_chans=4, hidden=16).eval()  # greyscale frames
    with torch.no_grad():
        assert grey(torch.zeros(1, 2, 4, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="in_chans"):
        Nag2019(in_chans=7)


# --- loss --------------------------------------------------------------------------------------


def test_nag_loss_by_hand():
    # B = 2, L = 2, C = 2, lengths (2, 1): three valid steps.
    # Sequence 0, label 0: logits (0, 0) -> p0 = 1/2, CE = ln 2;
    #                      logits (ln 3, 0) -> p0 = 3/4, CE = ln(4/3).
    # Sequence 1, label 1: logits (0, ln 3) -> p1 = 3/4, CE = ln(4/3); step 1 is padding.
    # L_class = (ln 2 + 2 ln(4/3)) / 3 = (0.693147 + 0.575364) / 3 = 0.422837
    # Intensity |pred - target| on the valid steps: |0.5 - 0.25| = 0.25, |0.8 - 1| = 0.2,
    # |0.2 - 0.5| = 0.3 -> L_reg = 0.25; with weight 2: total = 0.422837 + 0.5 = 0.922837.
    ln3 = math.log(3)
    logits = torch.tensor([[[0.0, 0.0], [ln3, 0.0]], [[0.0, ln3], [100.0, -100.0]]])
    output = NagOutput(logits, torch.tensor([[0.5, 0.8], [0.2, 0.9]]))
    y, target = torch.tensor([0, 1]), torch.tensor([[0.25, 1.0], [0.5, 0.0]])
    total, parts = nag_loss(output, y, target, intensity_weight=2.0, lengths=torch.tensor([2, 1]))
    assert parts["class"] == pytest.approx(0.422837, abs=1e-6)
    assert parts["reg"] == pytest.approx(0.25, abs=1e-6)
    assert total.item() == pytest.approx(0.922837, abs=1e-6) and parts["total"] == pytest.approx(total.item())
    # Without lengths the padded step counts: L_reg = (0.25 + 0.2 + 0.3 + 0.9) / 4 = 0.4125, and its
    # CE is -log softmax(100, -100)[1] = 200 (to float precision), so L_class = (0.422837 * 3 + 200) / 4.
    _, unmasked = nag_loss(output, y, target)
    assert unmasked["reg"] == pytest.approx(0.4125, abs=1e-6)
    assert unmasked["class"] == pytest.approx((0.422837 * 3 + 200) / 4, abs=1e-4)
    with pytest.raises(ValueError, match="y must lie"):
        nag_loss(output, torch.tensor([0, 2]), target)
    with pytest.raises(ValueError, match="intensity_target"):
        nag_loss(output, y, target[:, :1])


# --- expression states (Fig. 2) ------------------------------------------------------------------


CURVE = np.array([0.0, 0.1, 0.5, 0.95, 1.0, 0.92, 0.6, 0.3, 0.1, 0.05])


def test_intensity_states_by_hand():
    # Peak at frame 4. Defaults: apex >= 0.9, onset/offset < 0.2, relative to the peak (1 here).
    #   frame:  0    1    2    3     4    5     6    7    8    9
    #   value:  0    .1   .5   .95   1    .92   .6   .3   .1   .05
    #   side:   rising (t <= 4)             | falling (t > 4)
    #   state:  0    0    1    2     2    2     3    3    4    4
    expected = [0, 0, 1, 2, 2, 2, 3, 3, 4, 4]
    assert intensity_states(CURVE).tolist() == expected
    assert intensity_states(CURVE * 0.5).tolist() == expected  # relative: the peak is the reference
    # Absolute thresholds on the halved curve (0, .05, .25, .475, .5, .46, .3, .15, .05, .025):
    # nothing reaches 0.9, so no apex; below 0.2 -> onset / offset.
    absolute = StateParams(relative=False)
    assert intensity_states(CURVE * 0.5, absolute).tolist() == [0, 0, 1, 1, 1, 3, 3, 4, 4, 4]
    assert intensity_states(np.zeros(4)).tolist() == [0, 0, 0, 0]  # no expression at all
    assert intensity_states(CURVE).dtype == np.int64


def test_state_params_and_curve_are_validated():
    with pytest.raises(ValueError, match="onset_level < apex_level"):
        StateParams(apex_level=0.3, onset_level=0.5)
    with pytest.raises(ValueError, match="non-finite"):
        intensity_states(np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        intensity_states(np.zeros((2, 2)))
