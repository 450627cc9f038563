"""Many cells of one shape as one model: `PackedGPT` stacks K GPTs' weights along a leading axis and runs all K
forward and backward as batched matmuls (model.py's GPT, the same math, one kernel per op for the whole pack instead
of one per cell: a tiny model's step is launch and Python overhead, which the pack pays once).

Each cell's own GPT stays the owner of its weights as seen from outside: its parameters are rebound to views of the
stacks, so its state_dict, its evaluation and its AdamW (stepped on those views, with its own lr and clipping)
read and write the pack's storage in place. A checkpoint written from a cell is therefore a plain GPT checkpoint.
Cells of different shapes cannot be packed: the constructor refuses them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import GPT, _explicit_causal_attention


class PackedGPT(torch.nn.Module):
    """K same-shape GPTs (already initialised, or resumed) as one batched model; forward(idx, targets) with
    (K, B, T) tensors gives the K cells' mean losses."""

    def __init__(self, cells: list[GPT]):
        super().__init__()
        shapes = [[(n, tuple(p.shape)) for n, p in c.named_parameters()] for c in cells]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("cells of different shapes cannot be packed: a pack holds one model shape")
        first = cells[0]
        self.cells = cells
        self.n_head = first.blocks[0].attn.n_head if len(first.blocks) else 1
        self.n_layer, self.d_model = len(first.blocks), first.wte.weight.shape[1]
        self.tied = first.lm_head.weight is first.wte.weight
        self.names = [n for n, _ in first.named_parameters()]  # a tied head appears once, as wte.weight
        self.stacks = torch.nn.ParameterDict()
        for name in self.names:
            stack = torch.nn.Parameter(torch.stack([c.get_parameter(name).detach() for c in cells]))
            self.stacks[name.replace(".", "/")] = stack
            for k, c in enumerate(cells):
                c.get_parameter(name).data = stack.data[k]  # the cell's weights live in the stack from here on

    def w(self, name: str) -> torch.Tensor:
        return self.stacks[name.replace(".", "/")]

    def hand_grads(self) -> None:
        """Give each cell's parameters its slice of the stacks' gradients (views: clipping one scales it in place)."""
        for name in self.names:
            grad = self.w(name).grad
            for k, c in enumerate(self.cells):
                c.get_parameter(name).grad = None if grad is None else grad[k]

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none=set_to_none)
        for c in self.cells:
            c.zero_grad(set_to_none=True)

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (self.d_model,)) * self.w(name)[:, None, None, :]

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """x (K, B, T, in) through each cell's nn.Linear weight (K, out, in): one bmm over the K cells (a broadcast
        matmul over (K, B) would copy each weight B times)."""
        K, B, T, _ = x.shape
        return torch.bmm(x.reshape(K, B * T, -1), self.w(name).transpose(1, 2)).view(K, B, T, -1)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        K, B, T = idx.shape
        d, h = self.d_model, self.n_head
        cell = torch.arange(K, device=idx.device)[:, None, None]
        x = self.w("wte.weight")[cell, idx] + self.w("wpe.weight")[:, None, :T]
        for i in range(self.n_layer):
            p = f"blocks.{i}."
            q, k, v = self._linear(self._norm(x, p + "ln1.weight"), p + "attn.qkv.weight").split(d, dim=-1)
            q, k, v = (z.reshape(K * B, T, h, d // h).transpose(1, 2) for z in (q, k, v))
            if q.device.type == "cpu" and q.dtype == torch.bfloat16:
                y = _explicit_causal_attention(q, k, v)
            else:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self._linear(y.transpose(1, 2).reshape(K, B, T, d), p + "attn.proj.weight")
            x = x + self._linear(F.gelu(self._linear(self._norm(x, p + "ln2.weight"), p + "mlp.fc.weight")),
                                 p + "mlp.proj.weight")
        head = "wte.weight" if self.tied else "lm_head.weight"
        logits = self._linear(self._norm(x, "ln_f.weight"), head)
        # per cell, the mean over its tokens in fp32, as GPT.forward's loss
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
        return loss.view(K, -1).mean(dim=1)
