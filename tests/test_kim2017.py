"""Kim et al. 2017: Table 1 CNN + LSTM, the objective terms E1-E5, and the §3.1 affine augmentation.

Every expected number is worked out by hand in the comments (class means,
d_min, g with beta and tau), with a local g and sigmoid from ``math``; none
comes from the code under test.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mepipe.train.augment import AffineAugmentParams, affine_augment, affine_transform, affine_variants
from mepipe.train.models import create_model, get_recipe
from mepipe.train.models import kim2017
from mepipe.train.models.kim2017 import Kim2017, KimCNN, KimOutput
from mepipe.train.models.kim2017_loss import (
    KimLossParams,
    e1_class_error,
    e2_intra_class,
    e3_state_error,
    e4_intra_state,
    e5_state_continuity,
    kim_objective,
    parse_terms,
    softplus_g,
)

torch.set_num_threads(1)


def g(omega: float, beta: float) -> float:
    """Reference g(w) = log(1 + e^{beta w}) / beta."""
    return math.log1p(math.exp(beta * omega)) / beta


def sigmoid(z: float) -> float:
    """g'(w) = sigmoid(beta w)."""
    return 1.0 / (1.0 + math.exp(-z))


def _tensor(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Batch A (E2), 2-d features, N = 8, three classes:
#   class 0: (-2,0) (2,0) (6,0)  -> m0 = (2,0)
#   class 1: (2,4) (2,8) (2,6)   -> m1 = (2,6)
#   class 2: (-3,-1) (-3,1)      -> m2 = (-3,0)
# ||m0-m1|| = 6, ||m0-m2|| = 5, ||m1-m2|| = sqrt(25+36) = sqrt(61) = 7.81
# d_min^0 = min(6, 5)/2 = 2.5, d_min^1 = min(6, 7.81)/2 = 3, d_min^2 = min(5, 7.81)/2 = 2.5
FEATS_A = _tensor([[-2, 0], [2, 0], [6, 0], [2, 4], [2, 8], [2, 6], [-3, -1], [-3, 1]])
Y_A = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])

# Batch B (E4, E5), N = 8, apex state 2:
#   class 0: state 0: (0,0) (0,2) -> m00 = (0,1); state 1: (4,1) -> m01 = (4,1);
#            state 2: (3,7) (5,7) -> m02 = (4,7)
#   class 1: state 2: (4,2) -> m12; state 3: (4,5) -> m13; state 4: (4,6) -> m14
# class 0 distances: m00-m01 = 4, m00-m02 = sqrt(16+36) = 7.21, m01-m02 = 6
#   d^{0,0} = min(4, 7.21)/2 = 2, d^{0,1} = min(4, 6)/2 = 2, d^{0,2} = min(7.21, 6)/2 = 3
# class 1 distances: m12-m13 = 3, m12-m14 = 4, m13-m14 = 1
#   d^{1,2} = 1.5, d^{1,3} = 0.5, d^{1,4} = 0.5
# Means of the other class are closer (m01-m12 = 1, m14-m02 = 1) and must be ignored.
FEATS_B = _tensor([[0, 0], [0, 2], [4, 1], [3, 7], [5, 7], [4, 2], [4, 5], [4, 6]])
Y_B = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
STATE_B = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4])

# E4 on batch B with beta = 0.25, tau = 2: omega = ||f - m_{c,p}||^2 - (d^{c,p}/2)^2
#   (0,0), (0,2): 1 - 1 = 0;  (4,1): 0 - 1 = -1;  (3,7), (5,7): 1 - 1.5^2 = -1.25
#   (4,2): 0 - 0.75^2 = -0.5625;  (4,5), (4,6): 0 - 0.25^2 = -0.0625
# E4 = 1/2 [2 g(0) + g(-1) + 2 g(-1.25) + g(-0.5625) + 2 g(-0.0625)] / 8 = 1.26409
E4_B = 0.5 * (2 * g(0, 0.25) + g(-1, 0.25) + 2 * g(-1.25, 0.25) + g(-0.5625, 0.25) + 2 * g(-0.0625, 0.25)) / 8

# E5 on batch B with beta = 0.25, tau = 2: omega = ||m_q - m_p||^2 - (2 d^{c,p} / 2)^2
#   class 0, p=0 -> q=1: 16 - 2^2 = 12;  p=1 -> q=2: 36 - 2^2 = 32   (p=2 is the apex)
#   class 1, p=3 -> q=2: 9 - 0.5^2 = 8.75;  p=4 -> q=3: 1 - 0.5^2 = 0.75
# E5 = 1/2 [g(12) + g(32) + g(8.75) + g(0.75)] / 8 = 3.53351
E5_B = 0.5 * (g(12, 0.25) + g(32, 0.25) + g(8.75, 0.25) + g(0.75, 0.25)) / 8


# --- g, E1, E3 ---------------------------------------------------------------------------------


def test_softplus_g_values_gradient_and_stability():
    # g(0) = log(2) / beta; g(4) at beta 0.5 = 2 log(1 + e^2) = 4.25386; g(-4) = 2 log(1 + e^-2) = 0.25386.
    omega = torch.tensor([0.0, 4.0, -4.0], requires_grad=True)
    out = softplus_g(omega, 0.5)
    assert out.detach().numpy() == pytest.approx([2 * math.log(2), 2 * math.log1p(math.e ** 2),
                                                  2 * math.log1p(math.e ** -2)], rel=1e-6)
    out.sum().backward()  # g'(w) = sigmoid(beta w): 0.5, sigmoid(2), sigmoid(-2)
    assert omega.grad.numpy() == pytest.approx([0.5, sigmoid(2), sigmoid(-2)], rel=1e-6)
    # No overflow: g(1e4) = 1e4 (plus e^{-1e4}), g(-1e4) = 0 (underflows to 0, not NaN).
    big = softplus_g(torch.tensor([1e4, -1e4]), 1.0)
    assert big.tolist() == [1e4, 0.0]
    with pytest.raises(ValueError, match="beta"):
        softplus_g(omega, 0.0)


def test_e1_and_e3_are_mean_cross_entropies_by_hand():
    # Class logits (0, ln2, 0) with y = 1: p = 2/4 -> -log p = ln 2.
    #              (ln3, 0, 0) with y = 2: p = 1/5 -> ln 5.    E1 = (ln 2 + ln 5) / 2 = ln(10)/2.
    class_logits = _tensor([[0, math.log(2), 0], [math.log(3), 0, 0]])
    assert e1_class_error(class_logits, torch.tensor([1, 2])).item() == pytest.approx(math.log(10) / 2, rel=1e-6)
    # State logits (0,0,0,0,0) with state 3: p = 1/5 -> ln 5.
    #              (ln4, 0, 0, 0, 0) with state 1: p = 1/(4+4) -> ln 8.   E3 = (ln 5 + ln 8)/2 = ln(40)/2.
    state_logits = _tensor([[0, 0, 0, 0, 0], [math.log(4), 0, 0, 0, 0]])
    assert e3_state_error(state_logits, torch.tensor([3, 1])).item() == pytest.approx(math.log(40) / 2, rel=1e-6)


# --- E2 ----------------------------------------------------------------------------------------


def test_e2_intra_class_by_hand():
    # beta = 0.5. omega = ||f - m_c||^2 - (d_min^c)^2:
    #   class 0 (d^2 = 6.25): (-2,0): 16 - 6.25 = 9.75; (2,0): -6.25; (6,0): 9.75
    #   class 1 (d^2 = 9):    (2,4): 4 - 9 = -5; (2,8): -5; (2,6): -9
    #   class 2 (d^2 = 6.25): (-3,-1), (-3,1): 1 - 6.25 = -5.25
    # E2 = 1/2 [2 g(9.75) + g(-6.25) + 2 g(-5) + g(-9) + 2 g(-5.25)] / 8 = 1.26461
    expected = 0.5 * (2 * g(9.75, 0.5) + g(-6.25, 0.5) + 2 * g(-5, 0.5) + g(-9, 0.5) + 2 * g(-5.25, 0.5)) / 8
    feats = FEATS_A.clone().requires_grad_(True)
    value = e2_intra_class(feats, Y_A, beta=0.5)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # Means and radii are constants (eq. 5): dE2/df_i = g'(omega_i) (f_i - m_c) / N.
    #   (-2,0): sigmoid(0.5 * 9.75) * (-4, 0) / 8;  (2,0) = m0: 0;  (-3,1): sigmoid(-2.625) * (0, 1) / 8
    value.backward()
    assert feats.grad[0].tolist() == pytest.approx([sigmoid(4.875) * -4 / 8, 0.0], abs=1e-7)
    assert feats.grad[1].tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    assert feats.grad[7].tolist() == pytest.approx([0.0, sigmoid(-2.625) / 8], abs=1e-7)


def test_e2_is_zero_with_one_class():
    # No other class mean -> no d_min^c -> every sample contributes 0.
    value = e2_intra_class(FEATS_A[:3], torch.tensor([1, 1, 1]), beta=1.0)
    assert value.item() == 0.0


# --- E4, E5 ------------------------------------------------------------------------------------


def test_e4_intra_state_by_hand():
    assert e4_intra_state(FEATS_B, Y_B, STATE_B, beta=0.25, tau=2.0).item() == pytest.approx(E4_B, rel=1e-6)


def test_e4_skips_classes_with_a_single_state():
    # Class 0 has states 0 and 1: m00 = (0,1), m01 = (4,1), d = 2 each, tau = 1 -> radius^2 = 4.
    #   (0,0), (0,2): 1 - 4 = -3;  (4,1): 0 - 4 = -4.   Class 1, only state 3: contributes 0.
    # beta = 1: E4 = 1/2 [2 g(-3) + g(-4)] / 5
    feats = _tensor([[0, 0], [0, 2], [4, 1], [9, 9], [9, 11]])
    y, state = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 3, 3])
    expected = 0.5 * (2 * g(-3, 1.0) + g(-4, 1.0)) / 5
    assert e4_intra_state(feats, y, state, beta=1.0, tau=1.0).item() == pytest.approx(expected, rel=1e-6)
    assert e4_intra_state(feats[3:], y[3:], state[3:], beta=1.0, tau=1.0).item() == 0.0


def test_e5_state_continuity_by_hand_with_eq_11_gradients():
    feats = FEATS_B.clone().requires_grad_(True)
    value = e5_state_continuity(feats, Y_B, STATE_B, beta=0.25, tau=2.0, apex_state=2)
    assert value.item() == pytest.approx(E5_B, rel=1e-6)
    # Eq. 11: m_{c,p} live, m_{c,q} and d_min constant -> a sample of (c,p) gets
    # g'(omega) (m_{c,p} - m_{c,q}) / (N_{c,p} N), with g'(w) = sigmoid(0.25 w):
    #   (0,0), (0,2) [c0, p0]: sigmoid(3) (-4, 0) / (2*8)
    #   (4,1) [c0, p1]:        sigmoid(8) (0, -6) / 8   (being q of p=0 adds nothing)
    #   apex samples (3,7), (5,7), (4,2): 0
    #   (4,5) [c1, p3]: sigmoid(2.1875) (0, 3) / 8;  (4,6) [c1, p4]: sigmoid(0.1875) (0, 1) / 8
    value.backward()
    expected = [
        [sigmoid(3) * -4 / 16, 0], [sigmoid(3) * -4 / 16, 0], [0, sigmoid(8) * -6 / 8],
        [0, 0], [0, 0], [0, 0], [0, sigmoid(2.1875) * 3 / 8], [0, sigmoid(0.1875) / 8],
    ]
    for got, want in zip(feats.grad.tolist(), expected):
        assert got == pytest.approx(want, abs=1e-7)


def test_e5_needs_the_neighbour_towards_the_apex():
    # Class 0 with states 0 and 2 only: p = 0 needs q = 1, absent -> 0 (the apex is never p).
    feats, y = _tensor([[0, 0], [4, 4]]), torch.tensor([0, 0])
    assert e5_state_continuity(feats, y, torch.tensor([0, 2]), beta=1.0, tau=1.0).item() == 0.0
    # States 3 and 4 after the apex: p = 4 -> q = 3. m3 = (0,0), m4 = (0,2): distance 2,
    # d^{0,4} = 1, tau = 1: omega = 4 - (2*1)^2 = 0; p = 3 -> q = 2 absent.  E5 = 1/2 g(0) / 2 = log(2)/4
    value = e5_state_continuity(_tensor([[0, 0], [0, 2]]), y, torch.tensor([3, 4]), beta=1.0, tau=1.0)
    assert value.item() == pytest.approx(math.log(2) / 4, rel=1e-6)


# --- objective and term switch -----------------------------------------------------------------


def test_kim_objective_sums_the_enabled_terms():
    # Zero logits: E1 = ln 2 (two classes), E3 = ln 5 (five states).
    output = KimOutput(FEATS_B, torch.zeros(8, 2), torch.zeros(8, 5))
    only_e1 = KimLossParams(beta=0.25, tau=2.0, terms=("E1",))
    total, values = kim_objective(output, Y_B, STATE_B, only_e1)
    assert set(values) == {"E1"} and total.item() == pytest.approx(math.log(2), rel=1e-6)

    four = KimLossParams(beta=0.25, tau=2.0, terms=("E5", "E1", "E4", "E3"))
    assert four.terms == ("E1", "E3", "E4", "E5")  # kept in the paper's order
    total, values = kim_objective(output, Y_B, STATE_B, four)
    assert values == pytest.approx({"E1": math.log(2), "E3": math.log(5), "E4": E4_B, "E5": E5_B}, rel=1e-6)
    assert total.item() == pytest.approx(math.log(2) + math.log(5) + E4_B + E5_B, rel=1e-6)  # 7.10019

    total, values = kim_objective(output, Y_B, STATE_B, KimLossParams(beta=0.25, tau=2.0))
    assert list(values) == ["E1", "E2", "E3", "E4", "E5"]
    assert total.item() == pytest.approx(sum(values.values()), rel=1e-6)
    with pytest.raises(ValueError, match="state labels"):
        kim_objective(output, Y_B, torch.tensor([0, 0, 1, 2, 2, 2, 3, 5]), four)


def test_parse_terms_and_params_validation():
    assert parse_terms("E1,E2,E3") == ("E1", "E2", "E3")
    assert parse_terms(" e3, e1 ") == ("E1", "E3")
    assert parse_terms("ALL") == ("E1", "E2", "E3", "E4", "E5")
    with pytest.raises(ValueError, match="'E6'"):
        parse_terms("E1,E6")
    with pytest.raises(ValueError, match="lack 'E1'"):
        parse_terms("E2,E3")
    with pytest.raises(ValueError, match="more than once"):
        parse_terms("E1,e1")
    with pytest.raises(ValueError, match="empty term"):
        parse_terms("E1,,E2")
    assert KimLossParams(terms="e1,e4").terms == ("E1", "E4")
    with pytest.raises(ValueError, match="'X'"):
        KimLossParams(terms=("E1", "X"))
    with pytest.raises(ValueError, match="beta"):
        KimLossParams(beta=0.0)
    with pytest.raises(ValueError, match="apex_state"):
        KimLossParams(apex_state=5)


# --- networks ----------------------------------------------------------------------------------


def test_kim_cnn_table_1_sizes_and_parameter_count_by_hand():
    model = KimCNN(num_classes=3, in_chans=1, n_states=5, conv_widths=(2, 3, 4), fc_widths=(6, 5))
    # C1 1*2*9+2 = 20; C2 2*3*9+3 = 57; C3 3*4*9+4 = 112; flat 4*6*6 = 144 -> F4 144*6+6 = 870;
    # F5 6*5+5 = 35; Fc 5*3+3 = 18; Fp 5*5+5 = 30. Total 1142.
    assert sum(p.numel() for p in model.parameters()) == 1142
    sides = []
    for layer in (model.c1, model.pool, model.c2, model.c3):
        layer.register_forward_hook(lambda mod, inp, out: sides.append(out.shape[-1]))
    out = model(torch.zeros(7, 1, 64, 64))
    # Table 1: C1 62, S1 31, C2 29, S2 14, C3 12, S3 6 (the pool runs three times).
    assert sorted(sides, reverse=True) == [62, 31, 29, 14, 12, 6]
    assert isinstance(out, KimOutput)
    assert (out.features.shape, out.class_logits.shape, out.state_logits.shape) == ((7, 5), (7, 3), (7, 5))
    assert bool((out.features >= 0).all())  # F5 after ReLU
    with pytest.raises(ValueError, match=r"\(N, 1, 64, 64\)"):
        model(torch.zeros(2, 1, 63, 64))


def test_kim2017_parameter_count_by_hand():
    # Table 1 with 3 input channels: C1 3*32*9+32 = 896; C2 32*64*9+64 = 18,496; C3 64*64*9+64 = 36,928;
    # F4 (64*6*6 = 2304)*512+512 = 1,180,160; F5 512*512+512 = 262,656; Fp 512*5+5 = 2,565.
    # LSTM (torch has two bias vectors): per layer 4*512*(512+512) + 2*4*512 = 2,101,248, x3 = 6,303,744.
    # Fc and F9 are 512*C+C each: 2,565 for C = 5, 1,539 for C = 3.
    shared = 896 + 18_496 + 36_928 + 1_180_160 + 262_656 + 2_565 + 6_303_744  # 7,805,445
    assert sum(p.numel() for p in create_model("kim2017").parameters()) == shared + 2 * 2_565  # 7,810,575
    assert sum(p.numel() for p in create_model("kim2017", num_classes=3).parameters()) == shared + 2 * 1_539


def test_kim2017_recipe_trains_as_the_paper_says():
    """What a run of kim2017 trains with, as the trainer reads it from the recipe (Kim §3.1)."""
    from mepipe.train.run import RunParams, stage_train_params

    recipe = get_recipe("kim2017")
    cnn, lstm = stage_train_params(RunParams(model="kim2017", store="s", labels="casme2-5"), recipe)
    assert (cnn.epochs, lstm.epochs) == (40, 50)  # "The training epochs were set to 40 and 50"
    assert (cnn.optimizer, cnn.lr) == ("sgd", 0.01)  # CASME II's initial learning rate
    assert [s.trains for s in recipe.stages] == ["cnn", "temporal"]  # the LSTM stage leaves the CNN frozen
    assert set(recipe.reads) == {"state_frames", "frames_rgb"}
    model = create_model("kim2017", num_classes=3)
    assert isinstance(model, Kim2017)
    names = [n for n, _ in model.named_parameters()]
    for prefix in Kim2017.AUX_PREFIXES:
        assert any(n.startswith(prefix + ".") for n in names), prefix
    with pytest.raises(TypeError, match="dropout"):
        create_model("kim2017", dropout=0.5)


@pytest.fixture(scope="module")
def model() -> Kim2017:
    torch.manual_seed(0)
    return kim2017.kim2017(num_classes=3).eval()


def test_forward_with_lengths_equals_the_short_clip_alone(model):
    x = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        both = model(x, torch.tensor([4, 2]))
        assert both.shape == (2, 3)
        assert torch.allclose(both[0], model(x[:1])[0], atol=1e-5)
        assert torch.allclose(both[1], model(x[1:, :2])[0], atol=1e-5)
        # encode / frame_logits are the CNN's F5 and Fc.
        frames = x[0]
        out = model.cnn(frames)
        assert torch.equal(model.encode(frames), out.features) and out.features.shape == (4, 512)
        assert torch.equal(model.frame_logits(frames), out.class_logits)


def _grads(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {name: p.grad for name, p in model.named_parameters()}


def test_gradients_reach_the_forward_path_and_the_aux_heads_through_the_objective(model):
    x = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, torch.tensor([3, 2])), torch.tensor([0, 2])).backward()
    for name, grad in _grads(model).items():
        if name.startswith(Kim2017.AUX_PREFIXES):
            assert grad is None, f"{name} is not on the forward path"
        else:
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name

    model.zero_grad(set_to_none=True)
    frames = x.reshape(6, 3, 64, 64)
    total, _ = kim_objective(model.cnn(frames), torch.tensor([0, 0, 0, 1, 1, 1]),
                             torch.tensor([0, 1, 2, 0, 1, 2]), KimLossParams())
    total.backward()
    for name, grad in _grads(model).items():
        if name.startswith("temporal."):
            assert grad is None, name
        else:
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# --- augmentation (§3.1) -----------------------------------------------------------------------


def _one(flip=False, angle=0.0, shift=(0.0, 0.0), scale=1.0, n=1):
    return dict(flip=torch.tensor([flip] * n), angle=torch.tensor([angle] * n),
                shift=torch.tensor([shift] * n), scale=torch.tensor([scale] * n))


def test_flip_equals_torch_flip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # non-square on purpose
    out = affine_transform(x, **_one(flip=True, n=2))
    assert torch.allclose(out, torch.flip(x, dims=[-1]), atol=1e-4)


def test_shift_moves_a_bright_pixel_by_two():
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 2] = 1.0  # row 3, column 2
    out = affine_transform(x, **_one(shift=(2.0, -2.0)))  # 2 px right, 2 px up
    expected = torch.zeros(1, 1, 7, 7)
    expected[0, 0, 1, 4] = 1.0
    assert torch.allclose(out, expected, atol=1e-5)


def test_rotation_turns_images_and_flow_vectors_alike():
    # 90 degrees counter-clockwise on screen: a pixel right of the centre (row 2, col 3)
    # goes above it (row 1, col 2); a displacement (u, v) = (1, 0) becomes (0, -1) (y points down).
    image = torch.zeros(1, 3, 5, 5)
    image[0, 0, 2, 3] = 1.0
    image[0, 1] = 1.0  # u
    out = affine_transform(image, **_one(angle=90.0), vector_channels=(1, 2))
    assert out[0, 0].nonzero().tolist() == [[1, 2]]
    assert torch.allclose(out[0, 1], torch.zeros(5, 5), atol=1e-5)
    assert torch.allclose(out[0, 2], -torch.ones(5, 5), atol=1e-5)
    # A constant flow (u, v) = (1, 2): the flip negates u -> (-1, 2); a 1.1 zoom -> (1.1, 2.2);
    # a 30 degree turn -> (cos30 + 2 sin30, -sin30 + 2 cos30) = (1.86603, 1.23205).
    flow = torch.stack([torch.ones(6, 6), 2 * torch.ones(6, 6)])[None]
    for kwargs, (u, v) in [
        (_one(flip=True), (-1.0, 2.0)),
        (_one(scale=1.1), (1.1, 2.2)),
        (_one(angle=30.0), (math.cos(math.pi / 6) + 2 * math.sin(math.pi / 6),
                            -math.sin(math.pi / 6) + 2 * math.cos(math.pi / 6))),
    ]:
        turned = affine_transform(flow, **kwargs, vector_channels=(0, 1))
        assert torch.allclose(turned[0, 0], torch.full((6, 6), u), atol=1e-5)
        assert torch.allclose(turned[0, 1], torch.full((6, 6), v), atol=1e-5)
    # Without vector_channels the channels are only warped (a constant stays constant).
    assert torch.allclose(affine_transform(flow, **_one(angle=30.0)), flow, atol=1e-5)


def test_the_grid_has_150_variants():
    params = AffineAugmentParams()
    variants = affine_variants(params)
    assert params.n_variants == len(variants) == 2 * 5 * 5 * 3 == 150
    assert len(set(variants)) == 150
    assert {v[1] for v in variants} == {-10.0, -5.0, 0.0, 5.0, 10.0}
    assert {v[3] for v in variants} == {0.9, 1.0, 1.1}
    assert AffineAugmentParams(flip=False).n_variants == 75
    with pytest.raises(ValueError, match="scales"):
        AffineAugmentParams(scales=(0.0,))


def test_a_sequence_gets_one_transform_on_every_frame():
    x = torch.rand(3, 4, 2, 9, 9, generator=torch.Generator().manual_seed(3))
    out = affine_augment(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.dtype == x.dtype
    # The draws: one uniform index per sequence into the fixed variant list.
    picks = torch.randint(150, (3,), generator=torch.Generator().manual_seed(7)).tolist()
    variants = affine_variants()
    for b, pick in enumerate(picks):
        flip, angle, shift, scale = variants[pick]
        for t in range(4):
            alone = affine_transform(x[b, t][None], **_one(flip, angle, shift, scale))
            assert torch.allclose(out[b, t], alone[0], atol=1e-6)
    # Identical frames stay identical; the same seed gives the same batch.
    same = x[:, :1].expand(3, 4, 2, 9, 9).contiguous()
    warped = affine_augment(same, torch.Generator().manual_seed(11))
    assert torch.allclose(warped, warped[:, :1].expand_as(warped))
    assert torch.equal(affine_augment(x, torch.Generator().manual_seed(7)), out)
    with pytest.raises(TypeError, match="floating point"):
        affine_augment(x.to(torch.uint8), torch.Generator())


# --- training-set means (eq. 4-11 over the training set, issue 14) -----------------------------

# The training set is batch B (class 0 states 0, 1, 2; class 1 states 2, 3, 4) with 150 copies:
#   class means: m0 = mean of (0,0) (0,2) (4,1) (3,7) (5,7) = (12/5, 17/5) = (2.4, 3.4)
#                m1 = mean of (4,2) (4,5) (4,6) = (4, 13/3)
#   ||m0 - m1|| = sqrt(1.6^2 + (13/3 - 3.4)^2) = sqrt(2.56 + 0.87111) = 1.85233 -> d^0 = d^1 = 0.926165
#   state means and radii as for batch B above; N_{c,p} = count x 150: N_{0,0} = 300, N_{0,1} = 150, ...
D01 = math.sqrt(1.6 ** 2 + (13 / 3 - 3.4) ** 2) / 2


def test_training_set_means_by_hand():
    from mepipe.train.models.kim2017_loss import training_set_means

    means = training_set_means(FEATS_B, Y_B, STATE_B, n_classes=3, n_states=5, copies=150)
    assert means.class_means[0].tolist() == pytest.approx([2.4, 3.4], rel=1e-6)
    assert means.class_means[1].tolist() == pytest.approx([4.0, 13 / 3], rel=1e-6)
    assert torch.isnan(means.class_means[2]).all()  # no training sample of class 2
    assert means.class_radius[:2].tolist() == pytest.approx([D01, D01], rel=1e-6)
    assert means.state_means[0, 0].tolist() == [0.0, 1.0] and means.state_means[0, 2].tolist() == [4.0, 7.0]
    assert torch.isnan(means.state_means[0, 3]).all()
    assert means.state_radius[0, :3].tolist() == pytest.approx([2, 2, 3]) and torch.isinf(means.state_radius[0, 3])
    assert means.state_radius[1, 2:].tolist() == pytest.approx([1.5, 0.5, 0.5])
    assert means.state_counts[0].tolist() == [300, 150, 300, 0, 0] and means.state_counts[1].tolist() == [0, 0, 150,
                                                                                                            150, 150]


def test_terms_with_training_set_means_by_hand():
    # The batch holds two frames of the training set above: (0,2) [class 0, state 0] and (4,5) [class 1, state 3].
    from mepipe.train.models.kim2017_loss import training_set_means

    means = training_set_means(FEATS_B, Y_B, STATE_B, n_classes=2, n_states=5, copies=150)
    feats = _tensor([[0, 2], [4, 5]]).requires_grad_(True)
    y, state = torch.tensor([0, 1]), torch.tensor([0, 3])
    # E2 (beta 1): ||(0,2) - (2.4,3.4)||^2 = 5.76 + 1.96 = 7.72; ||(4,5) - (4,13/3)||^2 = 4/9; minus d^2 each.
    expected_e2 = 0.5 * (g(7.72 - D01 ** 2, 1.0) + g(4 / 9 - D01 ** 2, 1.0)) / 2
    assert e2_intra_class(feats, y, 1.0, means).item() == pytest.approx(expected_e2, rel=1e-6)
    # The batch alone has one frame per class: its own means would give omega = 0 - (d/2)^2 ... not these.
    assert e2_intra_class(feats, y, 1.0).item() != pytest.approx(expected_e2, rel=1e-3)
    # E4 (beta 0.25, tau 2): (0,2) vs m00 = (0,1): 1 - (2/2)^2 = 0; (4,5) vs m13 = (4,5): 0 - (0.5/2)^2 = -0.0625.
    expected_e4 = 0.5 * (g(0, 0.25) + g(-0.0625, 0.25)) / 2
    assert e4_intra_state(feats, y, state, 0.25, 2.0, means).item() == pytest.approx(expected_e4, rel=1e-6)
    # E5 (beta 0.25, tau 2): (c0, p0) -> q = 1: e5 = 12 (as for batch B), N_{0,0} = 300;
    #   (c1, p3) -> q = 2: e5 = 8.75, N_{1,3} = 150.
    # Value: [g(12)/(2*300) + g(8.75)/(2*150)] / 2 (batch N = 2).
    value = e5_state_continuity(feats, y, state, 0.25, 2.0, apex_state=2, means=means)
    assert value.item() == pytest.approx((g(12, 0.25) / 600 + g(8.75, 0.25) / 300) / 2, rel=1e-6)
    # Gradient (eq. 11): g'(e5) (m_p - m_q) / N_{c,p} / N:
    #   (0,2): sigmoid(3) ((0,1) - (4,1)) / 300 / 2 = sigmoid(3) (-4, 0) / 600
    #   (4,5): sigmoid(2.1875) ((4,5) - (4,2)) / 150 / 2 = sigmoid(2.1875) (0, 3) / 300
    value.backward()
    assert feats.grad[0].tolist() == pytest.approx([sigmoid(3) * -4 / 600, 0.0], abs=1e-9)
    assert feats.grad[1].tolist() == pytest.approx([0.0, sigmoid(2.1875) * 3 / 300], abs=1e-9)


class _Identity(nn.Module):
    """A stand-in for Kim's CNN whose F5 feature of a (1, 1, 2) 'frame' is its two pixels, times a weight."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.class_head = nn.Linear(2, 2)
        self.state_head = nn.Linear(2, 5)

    def features(self, x):
        return self.weight * x.flatten(1)

    def forward(self, x):
        f = self.features(x)
        return KimOutput(f, self.class_head(f), self.state_head(f))


class _Frames(torch.utils.data.Dataset):
    """Batch B's features as (1, 1, 2) frames with their class and state (un-augmented items)."""

    def __len__(self):
        return len(FEATS_B)

    def __getitem__(self, i):
        from mepipe.train.inputs.state_frames import StateItem

        return StateItem(x=FEATS_B[i].reshape(1, 1, 2), y=int(Y_B[i]), clip=i, state=int(STATE_B[i]))


def test_kim_step_refreshes_the_training_set_means_before_each_epoch():
    from mepipe.train.inputs.state_frames import StateItem
    from mepipe.train.models.kim2017 import MEANS, KimStateObjective
    from mepipe.train.recipe import RunOptions

    model = nn.Module()
    model.cnn = _Identity()
    step = KimStateObjective()(SimpleNamespace(options=RunOptions(augment=False)))
    step.start_epoch(model, _Frames(), torch.device("cpu"), 0)
    assert step.means.class_means[0].tolist() == pytest.approx([2.4, 3.4], rel=1e-6)
    assert step.means.state_counts[0, 0] == 2  # no augmentation: one copy of each frame
    with torch.no_grad():
        model.cnn.weight.fill_(2.0)  # the network changed during the epoch
    step.start_epoch(model, _Frames(), torch.device("cpu"), 1)
    assert step.means.class_means[0].tolist() == pytest.approx([4.8, 6.8], rel=1e-6)
    # The step's loss uses those means: E2 of one frame (0,2) -> feature (0,4), m0 = (4.8, 6.8), m1 = (8, 26/3).
    batch = StateItem(x=FEATS_B[1:2].reshape(1, 1, 1, 2), y=torch.tensor([0]), clip=torch.tensor([0]),
                      state=torch.tensor([0]), variant=torch.tensor([-1]))
    step.loss = KimLossParams(beta=1.0, terms=("E1", "E2"))
    loss, _, _ = step(model, batch, torch.Generator())
    e1 = F.cross_entropy(model.cnn.class_head(torch.tensor([[0.0, 4.0]])), torch.tensor([0])).item()
    e2 = 0.5 * g(4.8 ** 2 + 2.8 ** 2 - (2 * D01) ** 2, 1.0)
    assert loss.item() == pytest.approx(e1 + e2, rel=1e-5)
    batch_means = KimStateObjective()(SimpleNamespace(options=RunOptions(augment=False,
                                                                         choices=((MEANS.name, "batch"),))))
    batch_means.start_epoch(model, _Frames(), torch.device("cpu"), 0)
    assert batch_means.means is None  # the named option keeps the batch statistics


def test_stage_one_epochs_cover_the_grid_with_one_variant_per_clip(tmp_path):
    from mepipe.train.augment import AugmentedEpochs, VARIANTS
    from mepipe.train.inputs.base import VariantSampler
    from mepipe.train.models.kim2017 import AUGMENTATION, GRID_EPOCHS
    from mepipe.train.recipe import RunOptions

    sampler = VariantSampler(n_clips=3, n_variants=150, per_clip=150, items_per_clip=5, seed=0)
    draws = list(sampler)
    assert len(draws) == len(sampler) == 3 * 150 * 5
    # Five consecutive draws are one clip's five states under one variant (and one seed).
    groups = [draws[k:k + 5] for k in range(0, len(draws), 5)]
    for group in groups:
        clip, variant, seed = group[0][0] // 5, group[0][1], group[0][2]
        assert [d[0] for d in group] == [clip * 5 + s for s in range(5)]
        assert {d[1] for d in group} == {variant} and {d[2] for d in group} == {seed}
    # Every (clip, variant) once per epoch; a new order next epoch.
    pairs = [(g[0][0] // 5, g[0][1]) for g in groups]
    assert sorted(pairs) == [(c, v) for c in range(3) for v in range(150)]
    assert [(d[0], d[1]) for d in list(sampler)[::5]] != [(c * 5, v) for c, v in pairs]
    # variants=4: four distinct variants per clip per epoch.
    four = [d for d in VariantSampler(3, 150, 4, items_per_clip=5, seed=1)][::5]
    for clip in range(3):
        assert len({v for c, v, _ in four if c == clip * 5}) == 4
    # Which runs get augmented epochs, and how many variants.
    assert GRID_EPOCHS.per_clip(RunOptions(), 150) == 150
    assert GRID_EPOCHS.per_clip(RunOptions(choices=((VARIANTS.name, 4),)), 150) == 4
    assert GRID_EPOCHS.per_clip(RunOptions(augment=False), 150) == 0
    assert GRID_EPOCHS.per_clip(RunOptions(choices=((AUGMENTATION.name, "per-frame"),)), 150) == 0
    assert AugmentedEpochs().per_clip(RunOptions(choices=((VARIANTS.name, 500),)), 150) == 150


def test_grid_transform_applies_each_items_variant_and_leaves_minus_one():
    from mepipe.train.augment import grid_transform

    x = torch.rand(3, 5, 1, 9, 9, generator=torch.Generator().manual_seed(4))  # three clips' five states
    out = grid_transform(x, torch.tensor([7, -1, 149]))
    assert torch.equal(out[1], x[1])
    for b, v in ((0, 7), (2, 149)):
        flip, angle, shift, scale = affine_variants()[v]
        for t in range(5):  # the same transform on every frame of the clip
            alone = affine_transform(x[b, t][None], **_one(flip, angle, shift, scale))
            assert torch.allclose(out[b, t], alone[0], atol=1e-6)
    with pytest.raises(ValueError, match="variants must lie"):
        grid_transform(x, torch.tensor([0, 150, 1]))


def test_stage_two_encodes_each_sequence_under_its_epochs_variants_once():
    from mepipe.train.inputs.batches import Item
    from mepipe.train.inputs.sequences import AugmentedEncodings

    class Encoder(nn.Module):
        calls = 0

        def encode(self, frames):  # (T, 1, 6, 6) -> (T, 36)
            Encoder.calls += len(frames)
            return frames.flatten(1)

    class Sequences(torch.utils.data.Dataset):
        labels = torch.tensor([0, 1])

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return Item(x=torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(i)), y=i, clip=i)

    grid = AffineAugmentParams()
    data = AugmentedEncodings(Encoder(), Sequences(), torch.device("cpu"), grid, per_clip=3, seed=0)
    assert len(data) == 6
    data.start_epoch(0)
    assert Encoder.calls == 2 * 3 * 4 and len({p for p in data.pairs}) == 6
    for i in range(len(data)):
        clip, variant = data.pairs[i]
        flip, angle, shift, scale = affine_variants(grid)[variant]
        frames = Sequences()[clip].x
        expected = affine_transform(frames[None], **_one(flip, angle, shift, scale))[0].flatten(1)
        item = data[i]
        assert item.y == clip and item.length == 4
        assert torch.allclose(item.x, expected, atol=2e-3)  # kept as float16
    seen = set(data.pairs)
    data.start_epoch(1)  # new draws; only unseen (sequence, variant) pairs are encoded
    assert Encoder.calls == 4 * (len(seen) + len(set(data.pairs) - seen))


def _numpy_e5(batch: list[int], copies: int, beta: float = 1.0, tau: float = 1.0, apex: int = 2) -> float:
    """E5 of the batch rows of batch B with batch B as the training set, each frame drawn ``copies`` times an epoch.

    Written from eq. 10-11 in numpy: each non-apex sample of (c, p) adds g(omega) / (2 N_{c,p}) with
    N_{c,p} = frames of (c, p) x copies, omega = ||m_{c,q} - m_{c,p}||^2 - (2 d^{c,p} / tau)^2; the sum over the
    batch is divided by its size.
    """
    import numpy as np

    feats, y, state = FEATS_B.double().numpy(), Y_B.numpy(), STATE_B.numpy()
    groups = {(c, p): feats[(y == c) & (state == p)] for c, p in set(zip(y.tolist(), state.tolist()))}
    means = {key: rows.mean(axis=0) for key, rows in groups.items()}
    total = 0.0
    for i in batch:
        c, p = int(y[i]), int(state[i])
        q = p + 1 if p < apex else p - 1
        if p == apex or (c, q) not in means:
            continue
        radius = min(np.linalg.norm(means[(c, p)] - means[(c, j)]) for j in range(5)
                     if j != p and (c, j) in means) / 2
        omega = np.sum((means[(c, q)] - means[(c, p)]) ** 2) - (2 * radius / tau) ** 2
        total += np.log1p(np.exp(beta * omega)) / beta / (2 * len(groups[(c, p)]) * copies)
    return total / len(batch)


@pytest.mark.parametrize("choices, copies", [
    ((), 150),  # every variant of the grid each epoch
    ((("variants", 4),), 4),  # --recipe-option variants=4
    ((("augmentation", "per-frame"),), 1),  # one random variant per state frame, one pass per epoch
])
def test_e5_is_normalised_by_the_variants_an_epoch_draws(choices, copies):
    from mepipe.train.models.kim2017 import KimStateObjective
    from mepipe.train.recipe import RunOptions

    model = nn.Module()
    model.cnn = _Identity()
    step = KimStateObjective()(SimpleNamespace(options=RunOptions(choices=choices)))
    step.start_epoch(model, _Frames(), torch.device("cpu"), 0)
    # E5 of a batch of (0,2) [class 0, state 0] and (4,5) [class 1, state 3] with the epoch's means and counts
    # (E5's value needs only those and the batch's labels, whatever variant the batch shows).
    rows = [1, 6]
    output = model.cnn(FEATS_B[rows].reshape(2, 1, 1, 2))
    _, values = kim_objective(output, Y_B[rows], STATE_B[rows], KimLossParams(terms=("E1", "E5")), step.means)
    assert values["E5"] == pytest.approx(_numpy_e5(rows, copies), rel=1e-5)
    assert step.means.state_counts[0].tolist() == [2 * copies, copies, 2 * copies, 0, 0]
