"""The NADE's log-likelihood by segments between sounding keys (pyro_srnn.model.NADE.logits) against the
cumulative product over all 88 keys it replaced, forward and backward, on real frames.
Usage: .venv/bin/python -m benchmarks.nade [DATA_FILE]   (default data/jsb.h5; prints seconds, ratio, agreement)"""
import statistics
import sys
import time

import torch

from data_prep.h5 import PianoRollFile
from pyro_srnn.model import NADE

FRAMES, HIDDEN, REPEATS = 1600, 150, 5  # one paper-size batch: 16 streams x 100 steps


def all_keys_logits(nade: NADE, x: torch.Tensor) -> torch.Tensor:
    """The previous computation: every key's hidden state from the strictly lower triangle, (frames, 88, H)."""
    keys = x.shape[-1]
    below = torch.tril(torch.ones(keys, keys), -1)
    h = torch.sigmoid(nade.c.unsqueeze(-2) + (below * x.unsqueeze(-2)) @ nade.W.t())
    return nade.b + torch.einsum("...kh,kh->...k", h, nade.V)


def seconds(fn, x, params) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn(x).sum().backward()
        times.append(time.perf_counter() - started)
        for p in params:
            p.grad = None
    return statistics.median(times)


def main(path="data/jsb.h5"):
    torch.manual_seed(0)
    x = torch.as_tensor(PianoRollFile(path).split("train").rolls[:FRAMES], dtype=torch.float32)
    keys = x.shape[-1]
    params = [torch.randn(len(x), keys, requires_grad=True), torch.randn(len(x), HIDDEN, requires_grad=True),
              torch.randn(HIDDEN, keys, requires_grad=True), torch.randn(keys, HIDDEN, requires_grad=True)]
    nade = NADE(*params)
    segments = seconds(nade.logits, x, params)
    dense = seconds(lambda v: all_keys_logits(nade, v), x, params)
    agreement = (nade.logits(x) - all_keys_logits(nade, x)).abs().max().item()
    print(f"{len(x)} frames of {path}, H = {HIDDEN}, {torch.get_num_threads()} threads, medians of {REPEATS}:")
    print(f"  by segments {segments * 1000:.1f} ms, over all keys {dense * 1000:.1f} ms: {dense / segments:.1f}x; "
          f"largest difference in a logit {agreement:.1e}")


if __name__ == "__main__":
    main(*sys.argv[1:])
