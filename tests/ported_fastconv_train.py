"""A small PyTorch training script as a user would write it, kept twice:
``ported_torch_train.py`` imports torch, ``ported_fastconv_train.py`` imports
fastconv, and nothing else differs (tests/test_ported_train.py checks that,
and that both give the same losses from the same initial weights).

It uses what a ported loop reaches for: ModuleList, BatchNorm2d, LeakyReLU,
global average pooling, label smoothing, AdamW with a OneCycleLR schedule,
gradient clipping, and an optimiser and scheduler resumed from their state
dicts half way.
"""

import copy

import fastconv.nn as nn
from fastconv.nn.utils import clip_grad_norm_
from fastconv.optim import AdamW
from fastconv.optim.lr_scheduler import OneCycleLR


class SmallNet(nn.Module):
    def __init__(self, channels=(1, 8, 16), classes=10):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.1),
                nn.MaxPool2d(2),
            )
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[-1], classes))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(self.pool(x))


def make_optimizer(model, steps):
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    scheduler = OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
    return optimizer, scheduler


def train(batches, initial_state, steps=20, resume_at=10, max_norm=1.0):
    """Trains from ``initial_state`` on ``batches`` (inputs, labels) and returns
    the loss of every step; at ``resume_at`` the optimiser and the scheduler
    are rebuilt from their state dicts, as after a restart."""
    model = SmallNet()
    model.load_state_dict(initial_state)
    model.train()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer, scheduler = make_optimizer(model, steps)
    losses = []
    for step, (x, y) in enumerate(batches[:steps]):
        if step == resume_at:
            saved = copy.deepcopy((optimizer.state_dict(), scheduler.state_dict()))
            optimizer, scheduler = make_optimizer(model, steps)
            optimizer.load_state_dict(saved[0])
            scheduler.load_state_dict(saved[1])
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses
