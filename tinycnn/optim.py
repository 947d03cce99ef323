"""SGD with momentum and weight decay, Adam, and a learning-rate schedule.

An optimiser updates a network's parameters in place from their gradients; its running
state (SGD's velocities, Adam's moments) is what a checkpoint keeps besides the
parameters (``state_dict``, read back by ``load_state_dict``: tinycnn.io.checkpoint).
"""
import math

import numpy as np

from . import engine
from .backend import asarray, get_array_module, to_numpy


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.

        g = dL/dw + weight_decay * w          (weights only; biases are not decayed)
        v = momentum * v + g
        w = w - lr * (g + momentum * v)        Nesterov,  or  w - lr * v  classical

    Updates the network's parameter arrays in place.
    """

    def __init__(self, net, *, momentum=0.9, weight_decay=5e-4, nesterov=True):
        self.net, self.momentum, self.weight_decay = net, momentum, weight_decay
        self.nesterov = nesterov
        self.velocity = {name: get_array_module(p).zeros_like(p) for name, p in net.named_params()}

    def step(self, grads, lr):
        for name, p in self.net.named_params():
            g = grads[name]
            if self.weight_decay and name.endswith("weight"):
                g = g + self.weight_decay * p
            v = self.velocity[name]
            v *= self.momentum
            v += g
            p -= lr * (g + self.momentum * v if self.nesterov else v)

    def state_dict(self):
        """SGD's running state, on the host: {"velocity/<parameter>": array}."""
        return _on_host("velocity", self.velocity)

    def load_state_dict(self, state):
        """Restore what state_dict returned (tinycnn.io.checkpoint checks it first)."""
        self.velocity = {name: asarray(state[f"velocity/{name}"]) for name in self.velocity}


def adam_step(g, m, v, t, lr, *, betas=(0.9, 0.999), eps=1e-8):
    """Adam's step (Kingma & Ba 2015, Algorithm 1) for one array at step t = 1, 2, ...:
    updates its moments m and v in place and returns the change to subtract from it.

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
        step = lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    The one Adam of tinycnn: ``Adam`` below applies it to a network's parameters, and
    vis._optimize to an image.
    """
    if engine.enabled() and engine.kernels.active(g, m, v) and type(lr) in (int, float):
        return engine.kernels.adam_step(g, m, v, t, lr, betas, eps)     # one launch on a GPU
    b1, b2 = betas
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * g * g
    return lr * (m / (1 - b1 ** t)) / (get_array_module(v).sqrt(v / (1 - b2 ** t)) + eps)


class Adam:
    """Adam (Kingma & Ba 2015) on a network's parameters: ``adam_step`` on each, with its own
    moments m and v (zero at first) and the step count t they share.

    Defaults are the paper's (b1 0.9, b2 0.999, eps 1e-8), as torch.optim.Adam.
    Updates the network's parameter arrays in place.
    """

    def __init__(self, net, *, betas=(0.9, 0.999), eps=1e-8):
        self.net, self.betas, self.eps, self.t = net, betas, eps, 0
        self.m = {name: get_array_module(p).zeros_like(p) for name, p in net.named_params()}
        self.v = {name: get_array_module(p).zeros_like(p) for name, p in net.named_params()}

    def step(self, grads, lr):
        self.t += 1
        for name, p in self.net.named_params():
            m, v = self.m[name], self.v[name]
            p -= adam_step(grads[name], m, v, self.t, lr, betas=self.betas, eps=self.eps)

    def state_dict(self):
        """Adam's running state, on the host: {"m/<parameter>", "v/<parameter>": arrays,
        "t": the step count}."""
        return {**_on_host("m", self.m), **_on_host("v", self.v), "t": np.int64(self.t)}

    def load_state_dict(self, state):
        """Restore what state_dict returned (tinycnn.io.checkpoint checks it first)."""
        self.m = {name: asarray(state[f"m/{name}"]) for name in self.m}
        self.v = {name: asarray(state[f"v/{name}"]) for name in self.v}
        self.t = int(state["t"])


def _on_host(slot, arrays):
    """{"<slot>/<parameter>": host copy}: one kind of an optimiser's per-parameter state."""
    return {f"{slot}/{name}": to_numpy(a).copy() for name, a in arrays.items()}


def warmup_cosine(step, total_steps, peak_lr, warmup_steps):
    """Linear warm-up to peak_lr, then cosine decay to zero (Loshchilov & Hutter 2017)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
