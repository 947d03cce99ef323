"""SGD with momentum and weight decay, Adam, and a learning-rate schedule."""
import math

from .backend import get_array_module


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum and L2 weight decay.

        g = dL/dw + weight_decay * w          (weights only; biases are not decayed)
        v = momentum * v + g
        w = w - lr * (g + momentum * v)        Nesterov,  or  w - lr * v  classical

    Updates the network's parameter arrays in place.
    """

    def __init__(self, net, *, momentum=0.9, weight_decay=5e-4, nesterov=True):
        self.net, self.momentum, self.weight_decay, self.nesterov = net, momentum, weight_decay, nesterov
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


class Adam:
    """Adam (Kingma & Ba 2015) on a network's parameters, with bias correction:

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
        w = w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    Defaults are the paper's (b1 0.9, b2 0.999, eps 1e-8), as torch.optim.Adam.
    Updates the network's parameter arrays in place; ``state`` holds m, v and t.
    """

    def __init__(self, net, *, betas=(0.9, 0.999), eps=1e-8):
        self.net, self.betas, self.eps, self.t = net, betas, eps, 0
        self.m = {name: get_array_module(p).zeros_like(p) for name, p in net.named_params()}
        self.v = {name: get_array_module(p).zeros_like(p) for name, p in net.named_params()}

    def step(self, grads, lr):
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for name, p in self.net.named_params():
            g, m, v = grads[name], self.m[name], self.v[name]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= (lr / c1) * m / (get_array_module(p).sqrt(v / c2) + self.eps)


def warmup_cosine(step, total_steps, peak_lr, warmup_steps):
    """Linear warm-up to peak_lr, then cosine decay to zero (Loshchilov & Hutter 2017)."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * min(1.0, progress)))
