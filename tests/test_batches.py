"""Typed items: what an input form's dataset returns and its loader yields, in the main process, in DataLoader
workers and pinned for a GPU."""
from __future__ import annotations

import pytest
import torch

from mepipe.featurestore import open_store
from mepipe.train.inputs.batches import Item, collate
from mepipe.train.inputs.sequences import SequenceItem
from mepipe.train.inputs.state_frames import StateFrameDataset, StateItem
from mepipe.train.loop import make_loader
from mepipe.train.models.nag2019_windows import WindowItem

torch.set_num_threads(1)


def test_collate_stacks_fields_and_pads_only_the_stepwise_ones():
    a = WindowItem(x=torch.ones(2, 3), y=0, clip=4, frame=7, length=2, intensity=torch.tensor([0.5, 0.6]),
                   span=torch.tensor([1.0, 0.0]))
    b = WindowItem(x=2 * torch.ones(3, 3), y=1, clip=5, frame=0, length=3, intensity=torch.tensor([0.1, 0.2, 0.3]),
                   span=torch.tensor([0.0, 1.0, 1.0]))
    batch = collate([a, b])
    assert type(batch) is WindowItem
    assert batch.x.shape == (2, 3, 3) and batch.x[0, 2].abs().sum() == 0 and batch.x[1].eq(2).all()
    torch.testing.assert_close(batch.intensity, torch.tensor([[0.5, 0.6, 0.0], [0.1, 0.2, 0.3]]))
    assert batch.span.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    assert batch.y.dtype == torch.int64 and batch.clip.tolist() == [4, 5] and batch.frame.tolist() == [7, 0]
    assert batch.variant.tolist() == [-1, -1] and batch.length.tolist() == [2, 3]


def test_collate_refuses_ragged_plain_items_and_mixed_kinds():
    """Only a stepwise field is padded: plain items of different sizes are an error, not silently padded."""
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        collate([Item(x=torch.ones(2, 3), y=0, clip=0), Item(x=torch.ones(3, 3), y=0, clip=1)])
    with pytest.raises(TypeError, match="different kinds"):
        collate([Item(x=torch.ones(2), y=0, clip=0), SequenceItem(x=torch.ones(2), y=0, clip=1, length=2)])


def test_with_x_and_to_keep_the_kind_and_the_other_fields():
    batch = collate([StateItem(x=torch.zeros(3), y=1, clip=0, frame=2, state=2)])
    moved = batch.with_x(torch.ones(1, 3)).to("cpu")
    assert type(moved) is StateItem and moved.x.eq(1).all() and moved.state.tolist() == [2] and moved.y.tolist() == [1]


@pytest.mark.slow
def test_worker_processes_yield_the_same_typed_batches(full_store):
    store = open_store(full_store)
    data = StateFrameDataset(store, list(store.sample_ids[:2]), [0, 1])
    here = list(make_loader(data, 4))
    workers = list(make_loader(data, 4, workers=1))
    assert [type(b) for b in workers] == [StateItem] * 3
    for a, b in zip(here, workers):
        assert torch.equal(a.x, b.x) and torch.equal(a.state, b.state) and torch.equal(a.clip, b.clip)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_a_cuda_loader_pins_every_tensor_of_a_batch(full_store):
    store = open_store(full_store)
    data = StateFrameDataset(store, list(store.sample_ids[:1]), [0])
    (batch,) = list(make_loader(data, 5, device=torch.device("cuda")))
    assert type(batch) is StateItem and batch.x.is_pinned() and batch.state.is_pinned()
    assert batch.to("cuda").x.is_cuda
