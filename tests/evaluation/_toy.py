"""A tiny deterministic model and data module for evaluation tests (no dependence on the training stack)."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class ToySet(Dataset):
    """(x uint8 (3, 16, 16), y, index) with dataset indices offset by 1000 (as a validation split would keep)."""

    def __init__(self, n: int = 40, seed: int = 0, size: int = 16) -> None:
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, 3, 1, 1, generator=g)
        ramp = torch.linspace(0, 1, size).view(1, 1, 1, size)
        self.x = ((0.6 * base + 0.4 * ramp * torch.rand(n, 3, size, size, generator=g)) * 255).to(torch.uint8)
        self.y = torch.randint(0, 4, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i], 1000 + i


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(123)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 4)

    def forward(self, x):
        return self.fc(nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4).flatten(1))


def toy_forward(net: nn.Module):
    def fwd(x):
        return net((x - 0.5) / 0.25)

    return fwd


class ToyModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = ToyNet()

    def forward_normalized(self, x):
        return self.net((x - 0.5) / 0.25)

    def validation_step(self, batch, batch_idx):
        x, y, _ = batch
        loss = nn.functional.cross_entropy(self.forward_normalized(x.float() / 255), y)
        self.log("val/loss", loss, sync_dist=True)

    test_step = validation_step


class ToyData(L.LightningDataModule):
    def __init__(self, n: int = 40) -> None:
        super().__init__()
        self.ds = ToySet(n)

    def eval_dataset(self, stage: str = "test"):
        return self.ds

    def val_dataloader(self):
        return DataLoader(self.ds, batch_size=16)

    def test_dataloader(self):
        return DataLoader(self.ds, batch_size=16)
