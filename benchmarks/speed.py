"""The speed benchmark behind ``srnn bench``: every figure measured in one process, repeats interleaved,
medians quoted (the machines are shared and noisy, so only ratios from one run are compared)."""
from __future__ import annotations

import dataclasses
import json
import statistics
import subprocess
import sys
import time

import numpy as np
import pyro
import torch

from benchmarks.sizes import BATCH, KEYS_ON, SIZES, STEPS
from pyro_srnn.batching import shifted_inputs, to_batch
from pyro_srnn.capture import CapturedSteps, capture_problem, make_capturable
from pyro_srnn.config import SRNNConfig
from pyro_srnn.elbo import PYRO_ELBOS
from pyro_srnn.evaluate import make_elbo, score_sequences
from pyro_srnn.model import SRNN, FusedDraws, Paths
from pyro_srnn.numerics import denormals_flushed
from pyro_srnn.sample import sample_rolls
from pyro_srnn.step import make_optimizer, svi_step

def step_flops(config: SRNNConfig, frames: int) -> float:
    """FLOPs of one training step: every network once per frame, 2 FLOPs per multiply-add, backward = 2x forward.
    The embedding counts once: u_t = x_{t-1}, so one embedding of each frame serves both (the step-by-step
    step, ``srnn.fused = False``, embeds every frame twice: 2.8 GFLOP more at paper size)."""
    c = config
    x, h, d, a, z = c.x_dim, c.hidden, c.d, c.a, c.z
    macs = x * h + h * h  # the embedding of x_t, which is u_{t+1}
    macs += 3 * (h * d + d * d)  # forward GRU
    macs += 3 * ((d + h) * a + a * a) if not c.filtering else (d + h) * h + h * a
    macs += 2 * ((d + z) * h + h * z)  # prior mean and log-variance MLPs
    macs += 2 * ((a + z) * h + h * z)  # posterior MLPs
    macs += (d + z) * h + h * x  # emission
    return 2 * macs * 3 * frames


def synthetic_batch(config: SRNNConfig, seed=0):
    """B x T frames with about KEYS_ON keys on per frame."""
    rng = np.random.default_rng(seed)
    x = (rng.random((BATCH, STEPS, config.x_dim)) < KEYS_ON / config.x_dim).astype(np.float32)
    return to_batch(x, shifted_inputs(x), np.ones((BATCH, STEPS), bool),
                    (torch.zeros(BATCH, config.d), torch.zeros(BATCH, config.z)))


def synchronize(device="cpu"):
    """CUDA runs asynchronously: a timer must wait for the queued kernels."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(n=2048, device="cpu") -> float:
    """fp32 (TF32 off, PyTorch's default) n x n matrix product, FLOP/s."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    synchronize(device)
    started = time.perf_counter()
    torch.mm(a, b)
    synchronize(device)
    return 2 * n ** 3 / (time.perf_counter() - started)


def interleaved(candidates: dict, repeats: int, device="cpu", every_repeat: dict | None = None) -> dict:
    """Median seconds of each candidate, run round-robin so that machine noise hits all alike; each repeat's
    seconds go to ``every_repeat`` (by candidate) when given, so that a slow outlier can be seen."""
    for fn in candidates.values():  # warm-up
        fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            synchronize(device)
            started = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - started)
    if every_repeat is not None:
        every_repeat.update(times)
    return {name: statistics.median(t) for name, t in times.items()}


def hand_coded_loss(srnn: SRNN, batch, kl_scale=1.0):
    """The same ELBO (analytic KL) from the same network code in plain PyTorch, no Pyro: what the networks
    alone cost. With ``srnn.fused`` the z-chain is the fused one and the KL one sum over the stacked steps (the
    arithmetic of our step without Pyro's sites), else step by step."""
    c = srnn.config
    paths = Paths(srnn, batch)
    if srnn.fused:
        draws = FusedDraws(paths, batch.state[1])
        z = draws.z_batch_first
        (mu_p, sd_p, mu_q, sd_q) = (torch.stack(v) for v in (draws.mu_p, draws.sd_p, draws.mu_q, draws.sd_q))
        var_p, var_q = sd_p ** 2, sd_q ** 2
        kl = 0.5 * ((var_p / var_q).log() + (var_q + (mu_q - mu_p) ** 2) / var_p - 1).sum()
    else:
        z, zs, kl = batch.state[1], [], 0.0
        for t in range(batch.steps):
            dmu_q, lv_q = paths.posterior_step(t, z)
            mu_p, lv_p = paths.prior_step(t, z)
            var_p, var_q = lv_p.exp() + c.variance_floor, lv_q.exp() + c.variance_floor
            z = mu_p + dmu_q + var_q.sqrt() * torch.randn_like(mu_p)
            kl = kl + 0.5 * ((var_p / var_q).log() + (var_q + dmu_q ** 2) / var_p - 1).sum()
            zs.append(z)
        z = torch.stack(zs, 1)
    logits = srnn.emission(paths.d, z)
    log_px = -torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.x, reduction="sum")
    return -(log_px - kl_scale * kl) / batch.frames


def breakdown(srnn: SRNN, batch, repeats: int) -> dict:
    """Forward + backward seconds of the parts of a step."""
    device = batch.x.device
    d = srnn.forward_path(batch.u, batch.state[0]).detach()
    inputs = torch.cat([d, srnn.embed(batch.x)], -1).detach()

    def run(loss_fn):
        def fn():
            srnn.zero_grad(set_to_none=True)
            loss_fn().backward()
        return fn

    def gru_d():
        return srnn.gru_d(torch.randn(batch.size, batch.steps, srnn.config.hidden, device=device))[0].sum()

    def gru_a():
        return srnn.gru_a(inputs)[0].sum() if not srnn.config.filtering else srnn.filtering_path(inputs).sum()

    def hoisted():  # the embedding and the emission, over all steps at once
        e = sum(e.sum() for e in srnn.shared_embeddings(batch.u, batch.x))
        return e + srnn.emission(d, torch.zeros(batch.size, batch.steps, srnn.config.z, device=device)).sum()

    def chain():  # the four MLPs' first layers on d_t and a_t for all steps, then the fused z-chain
        paths = Paths(srnn, batch)
        paths.__dict__["embedded"] = (e_u, e_x)  # computed above, out of this part's time
        paths.__dict__["d"], paths.__dict__["a"] = d, a
        draws = FusedDraws(paths, batch.state[1])
        return sum(t.sum() for t in (draws.z_batch_first, *draws.mu_p, *draws.sd_p, *draws.mu_q, *draws.sd_q))

    e_u, e_x = (e.detach() for e in srnn.shared_embeddings(batch.u, batch.x))
    a = srnn.inference_path(d, batch.x, batch.mask, e_x).detach()
    return interleaved({"forward GRU": run(gru_d), "backward GRU": run(gru_a), "embedding and emission": run(hoisted),
                        "z-chain (fused) with its first layers' d, a parts": run(chain)}, repeats, device)


def peak_memory_mb(size: str) -> float:
    """Peak resident memory added by one training step, in a fresh process: resident size sampled every
    millisecond during the step, minus the resident size before it (after one warm-up step)."""
    code = (
        "import ctypes, os, threading, time, torch, pyro\n"
        "from benchmarks.speed import SIZES, synthetic_batch\n"
        "from pyro_srnn.config import SRNNConfig\nfrom pyro_srnn.model import SRNN\n"
        "from pyro_srnn.step import make_optimizer, svi_step\nfrom pyro_srnn.evaluate import make_elbo\n"
        f"c = SRNNConfig(**SIZES[{size!r}]); s = SRNN(c); b = synthetic_batch(c); o = make_optimizer(s, c)\n"
        "svi_step(s, make_elbo('trace'), o, c, b)\n"
        "ctypes.CDLL('libc.so.6').malloc_trim(0)\n"
        "page = os.sysconf('SC_PAGE_SIZE')\n"
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * page\n"
        "before, peak, done = rss(), [0], []\n"
        "def watch():\n"
        "    while not done:\n"
        "        peak[0] = max(peak[0], rss()); time.sleep(0.001)\n"
        "t = threading.Thread(target=watch); t.start()\n"
        "svi_step(s, make_elbo('trace'), o, c, b)\n"
        "done.append(1); t.join()\n"
        "print((max(peak[0], rss()) - before) / 2 ** 20)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def cuda_peak_memory_mb(step, device) -> float:
    """Peak GPU memory allocated during one step beyond what was allocated before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20


@denormals_flushed()
def evaluation_seconds(data_file: str, size: str = "paper", split: str = "test", device="cpu") -> dict:
    """Seconds to score every full sequence of a split with a model of the given size (untrained: the
    work does not depend on the weights)."""
    from data_prep.h5 import PianoRollFile

    torch.manual_seed(0)
    srnn = SRNN(SRNNConfig(**SIZES[size])).to(device)
    sequences = PianoRollFile(data_file).split(split).sequences()
    synchronize(device)
    started = time.perf_counter()
    score_sequences(srnn, sequences, device=device)
    synchronize(device)
    seconds = time.perf_counter() - started
    frames = sum(map(len, sequences))
    return {"data": data_file, "split": split, "sequences": len(sequences), "frames": frames, "seconds": seconds,
            "frames_per_second": frames / seconds}


# The other models of the same machinery, timed beside the SRNN's analytic step (RNN-NADE and its issue's cost target).
NADE_SAMPLE = (64, 400)  # pieces x frames sampled from an SRNN-NADE of the benchmark's size
MODEL_VARIANTS = {"SRNN-NADE": {"emission": "nade"}, "RNN": {"z": 0}, "RNN-NADE": {"z": 0, "emission": "nade"}}


@denormals_flushed()  # as training and evaluation run
def run_benchmark(size: str = "paper", repeats: int = 5, device: str = "cpu") -> dict:
    from benchmarks.naive_srnn import NaiveSRNN

    torch.manual_seed(0)
    config = SRNNConfig(**SIZES[size])
    srnn = SRNN(config).to(device)
    batch = synthetic_batch(config).to(device)
    optimizer = make_optimizer(srnn, config)
    naive = NaiveSRNN(srnn)

    def ours(kind, fused=True):
        elbo = make_elbo(kind)

        def fn():
            srnn.fused = fused
            svi_step(srnn, elbo, optimizer, config, batch)
            srnn.fused = True
        return fn

    def hand_coded(fused):
        def fn():
            srnn.fused = fused
            loss = hand_coded_loss(srnn, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(srnn.parameters(), config.max_grad_norm)
            optimizer.step()
            srnn.fused = True
        return fn

    def baseline(kind):
        elbo = PYRO_ELBOS[kind]()

        def fn():
            with pyro.validation_enabled(True):
                loss = elbo.differentiable_loss(naive.model, naive.guide, batch) / batch.frames
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(srnn.parameters(), config.max_grad_norm)
            optimizer.step()
        return fn

    def captured(kind):  # its own copy of the model: the graph updates its parameters with a capturable Adam
        copy_config = dataclasses.replace(config, elbo=kind)
        copy = SRNN(copy_config).to(device)
        copy.load_state_dict(srnn.state_dict())
        copy_optimizer = make_optimizer(copy, copy_config)
        make_capturable(copy_optimizer, True, device)
        steps = CapturedSteps(copy, copy_optimizer, copy_config, device)
        return lambda: steps(batch, 1.0)

    def variant(**changes):  # the analytic step of another emission or latent layer: its own model of this size
        variant_config = dataclasses.replace(config, elbo="analytic", **changes)
        model = SRNN(variant_config).to(device)
        variant_optimizer = make_optimizer(model, variant_config)
        elbo = make_elbo("analytic")
        variant_batch = dataclasses.replace(batch, state=(batch.state[0], batch.state[1][:, :variant_config.z]))
        return lambda: svi_step(model, elbo, variant_optimizer, variant_config, variant_batch)

    candidates = {"ours trace": ours("trace"), "ours analytic": ours("analytic"),
                  "step by step trace": ours("trace", fused=False), "step by step analytic": ours("analytic", False),
                  "hand-coded analytic (no Pyro)": hand_coded(True),
                  "hand-coded step by step (no Pyro)": hand_coded(False),
                  "naive trace": baseline("trace"), "naive analytic": baseline("analytic"),
                  **{f"{name} (analytic)": variant(**changes) for name, changes in MODEL_VARIANTS.items()}}
    if capture_problem(torch.device(device)) is None:  # eager and captured side by side
        candidates.update({"captured trace": captured("trace"), "captured analytic": captured("analytic")})
    repeat_seconds = {}
    steps = interleaved(candidates, repeats, device, repeat_seconds)
    variant_steps = {name: steps.pop(f"{name} (analytic)") for name in MODEL_VARIANTS}
    rate = statistics.median(matmul_rate(device=device) for _ in range(5))
    flops = step_flops(config, BATCH * STEPS)
    parts = breakdown(srnn, batch, repeats)

    rng = np.random.default_rng(1)
    sequences = [(rng.random((400, 88)) < KEYS_ON / 88).astype(np.uint8) for _ in range(8)]
    synchronize(device)
    started = time.perf_counter()
    score_sequences(srnn, sequences, device=device)
    synchronize(device)
    eval_fps = 8 * 400 / (time.perf_counter() - started)
    started = time.perf_counter()
    sample_rolls(srnn, 200, 16)
    synchronize(device)
    sample_fps = 16 * 200 / (time.perf_counter() - started)
    nade = SRNN(dataclasses.replace(config, emission="nade")).to(device).eval()  # key by key: 88 steps a frame
    synchronize(device)
    started = time.perf_counter()
    sample_rolls(nade, NADE_SAMPLE[1], NADE_SAMPLE[0])
    synchronize(device)
    nade_sample_seconds = time.perf_counter() - started

    result = {
        "size": size, "config": SIZES[size], "batch": [BATCH, STEPS], "torch": torch.__version__,
        "threads": torch.get_num_threads(), "device": str(device),
        "step_seconds": steps, "step_repeat_seconds": repeat_seconds,
        "slowest_over_median": {k: max(repeat_seconds[k]) / v for k, v in steps.items()},
        "matmul_gflops": rate / 1e9, "step_gflop": flops / 1e9,
        "breakdown_seconds": parts,
        "variant_step_seconds": variant_steps,
        "variant_step_ratio": {name: s / steps["ours analytic"] for name, s in variant_steps.items()},
        "fused_speedup_trace": steps["step by step trace"] / steps["ours trace"],
        "fused_speedup_analytic": steps["step by step analytic"] / steps["ours analytic"],
        "speedup_trace": steps["naive trace"] / steps["ours trace"],
        "speedup_analytic": steps["naive analytic"] / steps["ours analytic"],
        **({"capture_speedup_trace": steps["ours trace"] / steps["captured trace"],
            "capture_speedup_analytic": steps["ours analytic"] / steps["captured analytic"]}
           if "captured trace" in steps else {}),
        "achieved_gflops": {k: flops / v / 1e9 for k, v in steps.items()},
        "fraction_of_matmul_peak": {k: flops / v / rate for k, v in steps.items()},
        "eval_frames_per_second": eval_fps, "sample_frames_per_second": sample_fps,
        "nade_sample": {"pieces": NADE_SAMPLE[0], "frames": NADE_SAMPLE[1], "seconds": nade_sample_seconds},
    }
    if torch.device(device).type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
        result["peak_step_memory_mb"] = cuda_peak_memory_mb(ours("trace"), device)
    else:
        result["peak_step_memory_mb"] = peak_memory_mb(size)
    return result


if __name__ == "__main__":
    print(json.dumps(run_benchmark(sys.argv[1] if len(sys.argv) > 1 else "paper"), indent=2))
