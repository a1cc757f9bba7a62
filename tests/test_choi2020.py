"""LFM / CLFM CNN-LSTM of Choi & Song 2020 (train/models/choi2020.py).

Parameter counts are worked out by hand from Table 1 and compared with the
paper's Table 2; they are never read back from the code under test. Table 2
is for C = 7 classes (CK+): only C = 7 reproduces its CNN counts.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mepipe.featurestore.views import middle_sequence
from mepipe.train.models import choi2020, create_model, get_recipe
from mepipe.train.models.choi2020 import CLFMNet, ChoiSequence, LFMNet, parameter_counts
from mepipe.train.models.sequence import SequenceHead

torch.set_num_threads(1)

TABLE2 = {  # Choi Table 2: (CNN, LSTM, total)
    "lfm": (7_351_223, 1_838_855, 9_190_078),
    "clfm": (520_375, 198_023, 718_398),
}


def conv(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout


def fc(cin: int, cout: int) -> int:
    return cin * cout + cout


def lstm_keras(d: int, h: int) -> int:
    """One LSTM layer with one bias per gate (Keras): 4 gates x (h x (d + h) + h)."""
    return 4 * (h * (d + h) + h)


def clfm_cnn_by_hand(c: int) -> int:
    # Table 1, right: conv1-2 /16, pool 21 -> 10, conv3-4 /32, pool 10 -> 5, conv5-7 /64,
    # flatten 64 * 5 * 5 = 1600, FC1 1600 -> 256, FC2 256 -> C.
    convs = conv(1, 16) + conv(16, 16) + conv(16, 32) + conv(32, 32) + conv(32, 64) + 2 * conv(64, 64)
    assert convs == 160 + 2_320 + 4_640 + 9_248 + 18_496 + 2 * 36_928 == 108_720
    return convs + fc(64 * 5 * 5, 256) + fc(256, c)


def lfm_cnn_by_hand(c: int) -> int:
    # Table 1, left: blocks of 2, 2, 3, 3, 3 convs with 16, 32, 64, 128, 128 filters, a pool after
    # each (224 -> 7), flatten 128 * 7 * 7 = 6272, FC1 6272 -> 1024, FC2 1024 -> C.
    convs = (conv(1, 16) + conv(16, 16) + conv(16, 32) + conv(32, 32) + conv(32, 64) + 2 * conv(64, 64)
             + conv(64, 128) + 2 * conv(128, 128) + 3 * conv(128, 128))
    assert convs == 108_720 + 73_856 + 5 * 147_584 == 920_496
    return convs + fc(6272, 1024) + fc(1024, c)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_clfm(num_classes: int = 3) -> ChoiSequence:
    cnn = CLFMNet(num_classes, widths=(2, 3, 4), fc_dim=6)
    return ChoiSequence(cnn, num_classes, hidden=5)


def tiny_lfm_cnn(num_classes: int = 3) -> LFMNet:
    return LFMNet(num_classes, widths=(2, 2, 3, 3, 4), fc_dim=6, input_size=32)


# --- parameter counts vs Table 2 ------------------------------------------------------------


def test_clfm_counts_match_table_2():
    cnn_paper, lstm_paper, total_paper = TABLE2["clfm"]
    # CNN: 108,720 + FC1 409,856 + FC2 1,799 = 520,375, exactly Table 2 at C = 7.
    assert clfm_cnn_by_hand(7) == cnn_paper
    assert n_params(CLFMNet(num_classes=7)) == cnn_paper
    # LSTM: 256 -> 128, one layer, one bias per gate: 197,120; classifier 128 -> 7: 903; 198,023 exactly.
    assert lstm_keras(256, 128) + fc(128, 7) == lstm_paper
    # torch.nn.LSTM has two bias vectors (b_ih, b_hh): 4 * 128 = 512 more than Table 2,
    # so our total is 718,910 against the paper's 718,398 (0.07 % more). The layers are the same.
    counts = parameter_counts(create_model("clfm", num_classes=7))
    assert counts == {"cnn": cnn_paper, "temporal": lstm_paper + 512, "total": total_paper + 512}
    # The project's 3- and 5-class setups: only the FC2 and LSTM-classifier widths change.
    for c in (3, 5):
        temporal = lstm_keras(256, 128) + 512 + fc(128, c)
        expected = {"cnn": clfm_cnn_by_hand(c), "temporal": temporal, "total": clfm_cnn_by_hand(c) + temporal}
        assert parameter_counts(create_model("clfm", num_classes=c)) == expected
    # Defaults (3 classes): 519,347 + 198,019 = 717,366, the "about 0.72 M" of the issue.
    assert parameter_counts(create_model("clfm"))["total"] == 717_366


def test_lfm_counts_match_table_2():
    cnn_paper, lstm_paper, total_paper = TABLE2["lfm"]
    # CNN: 920,496 + FC1 6,423,552 + FC2 7,175 = 7,351,223, exactly Table 2 at C = 7.
    assert lfm_cnn_by_hand(7) == cnn_paper
    assert n_params(LFMNet(num_classes=7)) == cnn_paper  # built for counting only, never run
    # Table 2's LFM LSTM is NOT one 128-unit layer (that would be 590,336 + 903 = 591,239).
    # It is exactly two stacked 256-unit layers (the ICIP 2018 network), Keras-style biases:
    # 1,311,744 + 525,312 + classifier 1,799 = 1,838,855.
    assert lstm_keras(1024, 128) + fc(128, 7) == 591_239 != lstm_paper
    assert lstm_keras(1024, 256) + lstm_keras(256, 256) + fc(256, 7) == lstm_paper
    # That variant in torch: + 4 * 256 bias per layer = 2,048 more than the paper.
    model = create_model("lfm", num_classes=7, hidden=256, num_layers=2)  # built for counting only
    assert parameter_counts(model) == {"cnn": cnn_paper, "temporal": lstm_paper + 2_048,
                                       "total": total_paper + 2_048}  # 9,192,126: 0.02 % more
    # The default temporal head (SequenceHead(1024, 128, 1, C)) at 3 and 5 classes.
    for c in (3, 5):
        temporal = lstm_keras(1024, 128) + 4 * 128 + fc(128, c)
        head = SequenceHead(1024, 128, 1, c)
        assert n_params(head) == temporal
        assert lfm_cnn_by_hand(c) + temporal == {3: 7_938_358, 5: 7_940_666}[c]
    assert total_paper == cnn_paper + lstm_paper


def test_parameter_counts_splits_cnn_and_temporal():
    model = tiny_clfm()
    counts = parameter_counts(model)
    # CNN: conv 1->2 20, 2->2 38, 2->3 57, 3->3 84, 3->4 112, 4->4 148 x2; side 21 -> 10 -> 5,
    # FC1 4*5*5 = 100 -> 6: 606; FC2 6 -> 3: 21.  LSTM 6 -> 5 torch: 4*(5*11 + 2*5) = 260; FC 5 -> 3: 18.
    cnn = 20 + 38 + 57 + 84 + 112 + 2 * 148 + 606 + 21
    assert counts == {"cnn": cnn, "temporal": 278, "total": cnn + 278}
    assert counts["total"] == n_params(model)


# --- layer layout ---------------------------------------------------------------------------


def test_clfm_layout_flattens_1600():
    net = CLFMNet(num_classes=5)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [16, 16, 32, 32, 64, 64, 64]
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) and m.stride == (1, 1) for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    assert net.conv(torch.zeros(1, 1, 21, 21)).shape == (1, 64, 5, 5)  # 64 * 5 * 5 = 1600
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (1600, 256, 5)


def test_lfm_layout_flattens_6272():
    net = LFMNet(num_classes=5)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [16, 16, 32, 32, 64, 64, 64] + [128] * 6
    assert all(m.kernel_size == (3, 3) and m.padding == (1, 1) for m in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 5
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (6272, 1024, 5)


# --- shapes and resizing --------------------------------------------------------------------


def test_clfm_shapes():
    torch.manual_seed(0)
    net = CLFMNet(num_classes=3)
    x = torch.rand(4, 1, 21, 21)
    feats = net.features(x)
    assert feats.shape == (4, 256) and bool((feats >= 0).all())  # after ReLU, as fed to the LSTM
    assert net(x).shape == (4, 3)
    assert torch.allclose(net(x), net.fc2(feats))
    with pytest.raises(ValueError, match=r"expects input \(N, 1, 21, 21\)"):
        net(torch.zeros(1, 1, 68, 68))


def test_lfm_resizes_68_to_input_size_inside_forward():
    torch.manual_seed(0)
    net = tiny_lfm_cnn()
    maps = torch.rand(3, 1, 68, 68)
    resized = F.interpolate(maps, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(net.features(maps), net.features(resized), atol=1e-6)
    assert net.features(maps).shape == (3, 6) and net(maps).shape == (3, 3)
    assert torch.equal(net.resize(resized), resized)  # already at input_size: untouched


def test_full_size_lfm_one_forward_at_224():
    torch.manual_seed(0)
    net = LFMNet(num_classes=3).eval()
    seen = []
    net.conv[0].register_forward_hook(lambda mod, args, out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        feats = net.features(torch.rand(1, 1, 68, 68))
    assert seen == [(1, 1, 224, 224)]
    assert feats.shape == (1, 1024) and torch.isfinite(feats).all()
    assert net.fc2(feats).shape == (1, 3)


# --- the sequence model ---------------------------------------------------------------------


def test_sequence_forward_with_lengths_equals_the_short_sequence_alone():
    torch.manual_seed(0)
    model = tiny_clfm().eval()
    x = torch.rand(2, 5, 1, 21, 21)
    out = model(x, lengths=torch.tensor([5, 3]))
    assert out.shape == (2, 3)
    assert torch.allclose(out[0], model(x[:1])[0], atol=1e-6)
    assert torch.allclose(out[1], model(x[1:, :3])[0], atol=1e-6)
    x[1, 3:] = torch.rand(2, 1, 21, 21)  # padding content does not matter
    assert torch.allclose(model(x, lengths=torch.tensor([5, 3])), out, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(x[0])


def test_sequence_encode_and_frame_logits_are_the_cnns():
    torch.manual_seed(0)
    model = tiny_clfm()
    maps = torch.rand(4, 1, 21, 21)
    assert torch.equal(model.encode(maps), model.cnn.features(maps))
    assert model.encode(maps).shape == (4, 6)
    assert torch.equal(model.frame_logits(maps), model.cnn(maps))
    assert model.frame_logits(maps).shape == (4, 3)
    assert isinstance(model.temporal, SequenceHead)
    assert model.temporal.rnn.hidden_size == 5 and model.temporal.rnn.num_layers == 1


def test_every_non_aux_parameter_gets_a_gradient_through_forward():
    torch.manual_seed(0)
    for model, side in ((tiny_clfm(), 21), (ChoiSequence(tiny_lfm_cnn(), 3, hidden=5), 68)):
        aux = [n for n, _ in model.named_parameters() if n.startswith(ChoiSequence.AUX_PREFIXES)]
        assert aux == ["cnn.fc2.weight", "cnn.fc2.bias"]
        logits = model(torch.rand(2, 3, 1, side, side))
        F.cross_entropy(logits, torch.tensor([0, 2])).backward()
        for name, param in model.named_parameters():
            if name in aux:
                assert param.grad is None, f"{name} is stage-1 only but got a gradient"
            else:
                assert param.grad is not None, f"{name} got no gradient"
                assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, f"{name}: bad gradient"
        # Stage 1 trains FC2 through frame_logits and leaves the LSTM alone.
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model.frame_logits(torch.rand(2, 1, side, side)), torch.tensor([1, 0])).backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if n in aux)
        assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("temporal."))


# --- registry -------------------------------------------------------------------------------


def test_recipes_and_factories():
    lfm_recipe, clfm_recipe = get_recipe("lfm"), get_recipe("clfm")
    assert lfm_recipe.reads == ("lfm",) and clfm_recipe.reads == ("clfm",)
    for recipe in (lfm_recipe, clfm_recipe):  # §V-A: the middle 24 maps, for the CNN and the LSTM
        assert [s.items.window for s in recipe.stages] == [choi2020.SEQUENCE_LENGTH] * 2 == [24, 24]
    model = create_model("clfm", num_classes=5)
    assert isinstance(model, ChoiSequence) and isinstance(model.cnn, CLFMNet)
    assert model.temporal.rnn.hidden_size == 128 and model.temporal.rnn.num_layers == 1
    assert model.temporal.rnn.input_size == 256
    with pytest.raises(TypeError, match="widths"):
        create_model("clfm", widths=(2, 3, 4))


def test_clfm_runs_on_a_stored_clip_sequence():
    # A 7-map clip of uint8 maps (the store's clfm), middle_sequence -> 24 maps, as float.
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 256, size=(7, 21, 21), dtype=np.uint8)
    seq = middle_sequence(maps, length=24)
    x = torch.from_numpy(seq.astype(np.float32) / 255.0)[None, :, None]
    assert tuple(x.shape[1:]) == (24, 1, 21, 21)
    torch.manual_seed(0)
    model = create_model("clfm", num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.cat([x, x]), lengths=torch.tensor([24, 10]))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
