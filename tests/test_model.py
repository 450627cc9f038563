import math

import torch

from sweep.config import ModelConfig
from sweep.train.model import GPT


def _tiny(**kw):
    return GPT(ModelConfig(n_layer=2, d_model=32, n_head=4, seq_len=16, vocab_size=64, **kw))


def test_initial_loss_is_near_uniform():
    torch.manual_seed(0)
    model = _tiny()
    x = torch.randint(0, 64, (4, 16))
    _, loss = model(x, x)
    assert abs(loss.item() - math.log(64)) < 0.3


def test_attention_is_causal():
    torch.manual_seed(0)
    model = _tiny().eval()
    x = torch.randint(0, 64, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 64  # change only the future of position 9
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_tied_embeddings_share_storage():
    model = _tiny(tie_embeddings=True)
    assert model.lm_head.weight is model.wte.weight
    ids = [id(p) for g in model.param_groups(0.1) for p in g["params"]]
    assert len(ids) == len(set(ids))


def test_sum_reduction_matches_mean():
    torch.manual_seed(0)
    model = _tiny()
    x = torch.randint(0, 64, (3, 16))
    _, mean = model(x, x)
    _, total = model(x, x, reduction="sum")
    assert torch.allclose(total, mean * x.numel(), rtol=1e-5)


def test_bf16_autocast_runs_on_cpu_and_loss_stays_fp32():
    torch.manual_seed(0)
    model = _tiny()
    x = torch.randint(0, 64, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(x, x)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_weight_decay_only_on_matrices():
    decay, no_decay = _tiny().param_groups(0.1)
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])
