"""Training-data order and augmentation randomness that a checkpoint can resume exactly.

Every random choice of the training input stream is a pure function of the run's seed:

- the order of epoch ``e`` is a permutation drawn from ``(seed, e)`` (shared by all ranks, each
  rank taking every ``world``-th sample, as :class:`~torch.utils.data.DistributedSampler` does);
- the augmentation of the sample at position ``p`` of epoch ``e`` (crop, flip, scale, colour
  jitter) is drawn from albumentations' generators seeded with ``(seed, e, p)``.

Nothing depends on worker processes, their number or how far they prefetched, so a run resumed
from a mid-epoch checkpoint (:meth:`ResumableSampler.resume_from`, called with the number of
batches the checkpoint's loop had consumed) sees exactly the samples, in the order and with the
augmentations, an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

SampleKey = tuple[int, int]  # (dataset index, augmentation seed)


def mix_seed(*parts: int) -> int:
    """A 32-bit seed from integers (NumPy's SeedSequence hashing: well spread, reproducible)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


class ResumableSampler(DistributedSampler):
    """Shuffling training sampler whose state is ``(epoch, samples already consumed)``.

    Yields ``(index, augmentation seed)`` keys for :class:`SeededSamples`. Lightning calls
    :meth:`set_epoch` every epoch and leaves ``DistributedSampler`` subclasses in place under DDP.

    Args:
        dataset: the training dataset (only its length is used).
        num_replicas, rank: DDP world size and rank (1 and 0 without DDP).
        seed: base seed of the order and of the augmentations.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._resume: tuple[int, int] | None = None  # (epoch, samples of this rank to skip)

    def resume_from(self, epoch: int, consumed: int) -> None:
        """Skip the first ``consumed`` samples of ``epoch`` the next time that epoch is iterated."""
        self._resume = (int(epoch), int(consumed))

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        g = torch.Generator()
        g.manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.dataset), generator=g).tolist()  # type: ignore[arg-type]
        order += order[: self.total_size - len(order)]  # pad so every rank gets num_samples
        positions = range(self.rank, self.total_size, self.num_replicas)
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self._resume = None
        for pos in list(positions)[skip:]:
            yield order[pos], mix_seed(self.seed, self.epoch, pos)


class SeededSamples(Dataset):
    """Wraps a dataset so that ``dataset[(index, seed)]`` seeds the dataset's albumentations
    pipeline with ``seed`` before loading ``index`` (plain integer keys pass through)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | SampleKey) -> Any:
        if isinstance(key, tuple | list):
            index, seed = key
            transform = getattr(self.dataset, "transform", None)
            if transform is not None and hasattr(transform, "set_random_seed"):
                transform.set_random_seed(int(seed))
            return self.dataset[index]
        return self.dataset[key]
