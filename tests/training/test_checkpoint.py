import pytest
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from vidrop.training.checkpoint import check_loader_workers


class _Numbers(torch.utils.data.IterableDataset):
    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        start, step = (info.id, info.num_workers) if info else (0, 1)
        return iter(range(start, 64, step))


def _state_after_one_batch(num_workers):
    loader = StatefulDataLoader(_Numbers(), batch_size=4, num_workers=num_workers)
    next(iter(loader))
    return loader.state_dict()


@pytest.mark.parametrize("saved, resumed", [(0, 2), (2, 0), (2, 3)])
def test_resuming_with_other_dataloader_workers_is_a_clear_error(saved, resumed):
    with pytest.raises(ValueError, match=f"--num_workers {resumed} differs from the {saved} DataLoader workers of "
                                         f"checkpoint step-00000030; allowed: --num_workers {saved}"):
        check_loader_workers(_state_after_one_batch(saved), resumed, "step-00000030")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_same_workers_resume(num_workers):
    state = _state_after_one_batch(num_workers)
    check_loader_workers(state, num_workers, "step-00000030")
    loader = StatefulDataLoader(_Numbers(), batch_size=4, num_workers=num_workers)
    loader.load_state_dict(state)  # what the check guards: torchdata asserts on another worker count
    assert len(next(iter(loader))) == 4
