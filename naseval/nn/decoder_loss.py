"""The decoder and the cross-entropy in one pass over row chunks, never holding all the logits.

The straightforward path builds (tokens, vocab) logits, their log-softmax, and in backward a
gradient of each: four buffers of tokens x vocab floats. For a batch of cells that is gigabytes,
and on a CPU the freshly mapped pages cost more than the arithmetic (glibc maps every buffer over
32 MiB anew). Here each chunk of rows goes through logits, log-softmax and loss, and, when
gradients are wanted, through softmax - one-hot straight into the gradients of the hidden
states, the tied embedding and the bias, while the chunk is in cache. The matrix products are
the same three as in the straightforward path.
"""

from __future__ import annotations

import torch

CHUNK_BYTES = 8 << 20  # one chunk's logits: fits in a large L2/L3 and far below glibc's mmap cap


def chunk_rows(vocab_size: int, itemsize: int) -> int:
    return max(1, CHUNK_BYTES // (vocab_size * itemsize))


def chunked_losses(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                   grads: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Each cell's mean cross-entropy of `hidden @ weight.T + bias` against `targets`; with `grads`
    (zeros shaped as hidden, weight, bias), also their gradients, accumulated there.

    hidden (A, N, H), weight (A, V, H), bias (A, V), targets (N,) shared by the A cells -> (A,).
    """
    cells, rows, _ = hidden.shape
    losses = torch.zeros(cells, dtype=torch.float32, device=hidden.device)
    step = chunk_rows(weight.size(1), hidden.element_size())
    for a in range(cells):
        for start in range(0, rows, step):
            h, t = hidden[a, start:start + step], targets[start:start + step]
            logits = torch.addmm(bias[a], h, weight[a].t()).float()
            # one pass of exp serves the loss (log of the sum) and the gradient (softmax)
            shift = logits.amax(dim=1, keepdim=True)
            target_logits = logits.gather(1, t.unsqueeze(1))
            exps = logits.sub_(shift).exp_()
            sums = exps.sum(dim=1, keepdim=True)
            losses[a] += (sums.log() + shift - target_logits).sum()
            if grads is not None:
                g = exps.div_(sums)  # softmax; minus the one-hot of the targets:
                g[torch.arange(t.numel(), device=t.device), t] -= 1.0
                g = g.div_(rows).to(hidden.dtype)
                grads[0][a, start:start + step] = g @ weight[a]
                grads[1][a] += g.t() @ h  # not addmm_: under bf16 autocast the product is bf16
                grads[2][a] += g.sum(dim=0)
    return losses / rows


class FusedDecoderLoss(torch.autograd.Function):
    """`chunked_losses` with the gradients computed in forward, while each chunk is in cache."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets):
        grads = [torch.zeros_like(t) for t in (hidden, weight, bias)]
        losses = chunked_losses(hidden, weight, bias, targets, grads)
        ctx.save_for_backward(*grads)
        return losses

    @staticmethod
    def backward(ctx, grad_losses):
        return *(g * grad_losses.view(-1, *[1] * (g.dim() - 1)).to(g.dtype) for g in ctx.saved_tensors), None


def decoder_losses(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   targets: torch.Tensor) -> torch.Tensor:
    """Per-cell mean cross-entropy: hidden (A, ..., H) with targets shaped as its middle dims.
    Gradients are computed only when autograd will ask for them (not under no_grad)."""
    cells, size = hidden.size(0), hidden.size(-1)
    inputs = (hidden.reshape(cells, -1, size), weight, bias, targets.flatten())
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs[:3]):
        return FusedDecoderLoss.apply(*inputs)
    return chunked_losses(*inputs)
