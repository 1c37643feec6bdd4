"""The SRNN written the obvious way in Pyro: the baseline of ``srnn bench``.

Every network runs on concatenated inputs inside the ``pyro.markov`` loop, x is observed with one site per
time step, the deterministic GRU runs one step at a time, and Pyro's argument validation stays on. It reuses
the parameters of a :class:`pyro_srnn.model.SRNN`, so both compute the same ELBO for the same noise.
"""
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine

from pyro_srnn.model import clipped_leaky_relu, reversal_index, take_steps


class NaiveSRNN:
    def __init__(self, srnn):
        self.srnn = srnn
        self.c = srnn.config

    def mlp_pair(self, gaussian, inputs):
        """The mean and log-variance MLPs of one Gaussian, each on [c_t, z_{t-1}]."""
        w1 = torch.cat([gaussian.first_c.weight, gaussian.first_z.weight], dim=1)
        h = clipped_leaky_relu(F.linear(inputs, w1, gaussian.first_c.bias))
        h_mean, h_logvar = h.split(gaussian.hidden, dim=-1)
        return gaussian.mean_out(h_mean), gaussian.logvar_out(h_logvar)

    def gru_step(self, gru, inputs, h):
        out, _ = gru(inputs.unsqueeze(1), h.unsqueeze(0).contiguous())
        return out[:, 0]

    def normal(self, mean, logvar):
        return dist.Normal(mean, (logvar.exp() + self.c.variance_floor).sqrt()).to_event(1)

    def model(self, batch, kl_scale=1.0, paths=None):  # paths: ignored, everything is computed in here
        s = self.srnn
        pyro.module("naive_srnn", s)
        d, z = batch.state
        with pyro.plate("sequences", batch.size):
            for t in pyro.markov(range(batch.steps)):
                d = self.gru_step(s.gru_d, s.embed(batch.u[:, t]), d)
                mean, logvar = self.mlp_pair(s.prior, torch.cat([d, z], dim=-1))
                with poutine.scale(scale=kl_scale), poutine.mask(mask=batch.mask[:, t]):
                    z = pyro.sample(f"z_{t + 1}", self.normal(mean, logvar))
                logits = s.emission(d, z)
                with poutine.mask(mask=batch.mask[:, t]):
                    pyro.sample(f"x_{t + 1}", dist.Bernoulli(logits=logits).to_event(1), obs=batch.x[:, t])

    def guide(self, batch, kl_scale=1.0, paths=None):
        s = self.srnn
        pyro.module("naive_srnn", s)
        d_t, ds = batch.state[0], []
        for t in range(batch.steps):
            d_t = self.gru_step(s.gru_d, s.embed(batch.u[:, t]), d_t)
            ds.append(d_t)
        d = torch.stack(ds, dim=1)
        index = reversal_index(batch.mask)
        a = take_steps(s.gru_a(take_steps(torch.cat([d, s.embed(batch.x)], dim=-1), index))[0], index)
        z = batch.state[1]
        with pyro.plate("sequences", batch.size):
            for t in pyro.markov(range(batch.steps)):
                mu_p, _ = self.mlp_pair(s.prior, torch.cat([d[:, t], z], dim=-1))
                dmu_q, logvar_q = self.mlp_pair(s.posterior, torch.cat([a[:, t], z], dim=-1))
                with poutine.scale(scale=kl_scale), poutine.mask(mask=batch.mask[:, t]):
                    z = pyro.sample(f"z_{t + 1}", self.normal(mu_p + dmu_q, logvar_q))
