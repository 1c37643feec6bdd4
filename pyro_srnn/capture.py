"""The training step as one CUDA graph: captured once per chunk shape, replayed for every chunk after.

A paper-size SVI step is about 34 GFLOP, under a millisecond of arithmetic on a large GPU, but its 100-step
loop in model and guide, forward and backward, launches thousands of small kernels from Python. Captured as a
graph, a step is one launch. What capture needs, and how the step meets it:

- fixed input buffers: the chunk (x, u, mask) and the carried states (d_0, z_0) are copied into tensors
  that the graph reads; a chunk of another length (the short last chunk of an epoch) gets its own graph;
- no host synchronisation inside the step: the KL temperature and the learning rate are tensors filled
  before each replay, not numbers baked into the graph; the gradient is rescaled and clipped on the device,
  and its finiteness is checked after the replay (a non-finite step stops training, as in the eager step);
- random draws: PyTorch's CUDA generator is graph-safe, so each replay draws fresh noise, the noise the
  eager step would draw from the same generator state.

On the CPU nothing is captured: :class:`StaticStep` runs the same function eagerly, which is how the tests
check it against :func:`pyro_srnn.step.svi_step` without a GPU.
"""
from __future__ import annotations

import pyro
import torch
from pyro import poutine

from .elbo import sequence_terms
from .model import SRNN
from .sequence_model import Batch
from .step import clip_gradients


def capture_problem(device: torch.device, processes: int = 1, config=None) -> str | None:
    """Why the step cannot be captured here, or None when it can."""
    if config is not None and config.model != "srnn":
        return "the captured step is the SRNN's (its z_t a chain of Normals)"
    if config is not None and config.iwae_particles:
        return "the captured step trains on an ELBO, not on the importance-weighted bound"
    if device.type != "cuda":
        return "CUDA graph capture needs a CUDA device"
    if processes > 1:
        return "CUDA graph capture is for one process (DistributedDataParallel synchronises inside the step)"
    return None


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float):
    """Into the tensor a captured Adam reads, or as the number an eager one reads."""
    for group in optimizer.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def make_capturable(optimizer: torch.optim.Optimizer, capturable: bool, device):
    """Adam's settings for a captured step (learning rate a device tensor, capturable updates) or an eager one;
    also after loading a checkpoint written in the other mode."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=device) if capturable else lr
        group["capturable"] = capturable
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = state["step"].to(device if capturable else "cpu")


class StaticStep:
    """The SVI step of :func:`pyro_srnn.step.svi_step` over fixed buffers of one chunk shape; with
    ``capture`` (CUDA), recorded as a graph on first use and replayed after."""

    def __init__(self, srnn: SRNN, optimizer, config, shape: tuple, device, capture: bool, pool=None):
        self.srnn, self.optimizer, self.config, self.capture = srnn, optimizer, config, capture
        b, t = shape
        zeros = lambda *s, dtype=torch.float32: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        self.batch = Batch(zeros(b, t, config.x_dim), zeros(b, t, config.x_dim), zeros(b, t, dtype=torch.bool),
                           srnn.initial_state(b, device))
        self.temperature = zeros(())
        self.graph, self.pool, self.out = None, pool, None

    def _step(self):
        """Model and guide traced at KL scale 1; the temperature multiplies the KL as a tensor, so one graph
        serves every temperature. The terms are :func:`sequence_terms`', as in the ELBO classes."""
        srnn, batch, c = self.srnn, self.batch, self.config
        self.optimizer.zero_grad(set_to_none=True)
        with pyro.validation_enabled(False):
            paths = srnn.prepare(batch)
            guide_trace = poutine.trace(srnn.guide).get_trace(batch, 1.0, paths)
            model_trace = poutine.trace(poutine.replay(srnn.model, trace=guide_trace)).get_trace(batch, 1.0, paths)
        terms = sequence_terms(model_trace, guide_trace, c.kl_form)
        reconstruction, kl = terms.reconstruction.sum(), terms.kl.sum()
        loss = -(reconstruction - self.temperature * kl) / batch.frames
        loss.backward()
        grad_norm = clip_gradients(srnn, c)
        self.optimizer.step()
        state = guide_trace.nodes["_RETURN"]["value"]
        return torch.stack([loss.detach(), reconstruction.detach(), kl.detach(), grad_norm]), \
            tuple(s.detach() for s in state)

    def _record(self):
        """Warm up on a side stream (as PyTorch's recipe asks), put back every state the warm-up changed
        (parameters, Adam's moments, the generator), then capture."""
        params = [p.detach().clone() for p in self.srnn.parameters()]
        moments = {id(p): {k: v.clone() for k, v in s.items()} for p, s in self.optimizer.state.items()}
        rng = torch.cuda.get_rng_state()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            for p, saved in zip(self.srnn.parameters(), params):
                p.copy_(saved)
            for p, state in self.optimizer.state.items():
                for k, v in state.items():
                    v.copy_(moments[id(p)][k]) if id(p) in moments else v.zero_()
        torch.cuda.set_rng_state(rng)
        self.optimizer.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=self.pool):
            self.out = self._step()

    def __call__(self, batch: Batch, temperature: float):
        """As svi_step: the loss per frame, (reconstruction, KL) summed, the states to carry, the gradient norm."""
        self.srnn.train()  # cuDNN's GRU has no backward pass in eval mode
        for mine, given in zip((self.batch.x, self.batch.u, self.batch.mask, *self.batch.state),
                               (batch.x, batch.u, batch.mask, *batch.state)):
            mine.copy_(given)
        self.temperature.fill_(temperature)
        if not self.capture:
            out = self._step()
        else:
            if self.graph is None:
                self._record()
            self.graph.replay()
            out = self.out
        numbers, state = out
        loss, reconstruction, kl, grad_norm = numbers.tolist()  # the one synchronisation of a step
        return loss, (reconstruction, kl), tuple(s.clone() for s in state), grad_norm


class CapturedSteps:
    """One :class:`StaticStep` per chunk shape, sharing one memory pool."""

    def __init__(self, srnn: SRNN, optimizer, config, device, capture: bool = True):
        self.srnn, self.optimizer, self.config, self.device, self.capture = srnn, optimizer, config, device, capture
        self.pool = torch.cuda.graph_pool_handle() if capture else None
        self.steps = {}

    def __call__(self, batch: Batch, temperature: float):
        shape = (batch.size, batch.steps)
        if shape not in self.steps:
            self.steps[shape] = StaticStep(self.srnn, self.optimizer, self.config, shape, self.device, self.capture,
                                           self.pool)
        return self.steps[shape](batch, temperature)
