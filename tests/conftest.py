import os

import pytest

# Tests never reach a hub or wandb's servers.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _small_torch(monkeypatch):
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield
