"""The optimisers of tinycnn/optim.py against their definitions: Adam by Kingma & Ba's
Algorithm 1 written element by element (and torch.optim.Adam where installed), and the
state a checkpoint keeps, given back as it was. SGD's steps by hand are in test_train.py."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.optim import SGD, Adam, adam_step

from .conftest import on_device


def adam_by_the_paper(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1, element by element."""
    w, m, v = list(w), [0.0] * len(w), [0.0] * len(w)
    for t, g in enumerate(grads, start=1):
        for i in range(len(w)):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            mhat, vhat = m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)
            w[i] -= lr * mhat / (vhat ** 0.5 + eps)
    return w


def _one_param_net(w0):
    lin = tc.Linear(len(w0), 1, dtype=np.float64)
    lin.params = {"weight": on_device(np.array([w0])), "bias": on_device(np.zeros(1))}
    return tc.Network([("fc", lin)]), lin


def _grads(g):
    return {"fc.weight": on_device(g[None]), "fc.bias": on_device(np.zeros(1))}


def test_adam_follows_the_paper():
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(4), rng.standard_normal((6, 4)) * [1, 1e-3, 10, 1e-7]
    net, lin = _one_param_net(w0)
    opt = Adam(net)
    for g in grads:
        opt.step(_grads(g), lr=0.01)
    np.testing.assert_allclose(to_numpy(lin.params["weight"])[0],
                               adam_by_the_paper(w0, grads, 0.01), rtol=1e-12)


def test_adam_step_on_one_array_follows_the_paper():
    """adam_step is what both Adam and vis._optimize's "adam" use: one array, its moments."""
    rng = np.random.default_rng(2)
    w0, grads = rng.standard_normal(5), rng.standard_normal((7, 5)) * [1, 1e-4, 30, 1e-8, 0]
    w, m, v = on_device(w0.copy()), on_device(np.zeros(5)), on_device(np.zeros(5))
    for t, g in enumerate(grads, start=1):
        w = w - adam_step(on_device(g), m, v, t, 0.2, betas=(0.8, 0.99))
    np.testing.assert_allclose(to_numpy(w), adam_by_the_paper(w0, grads, 0.2, 0.8, 0.99),
                               rtol=1e-12)


def test_adam_agrees_with_torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install torch")
    rng = np.random.default_rng(1)
    w0, grads = rng.standard_normal(5), rng.standard_normal((8, 5))
    net, lin = _one_param_net(w0)
    opt = Adam(net)
    p = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([p], lr=0.003)
    for g in grads:
        opt.step(_grads(g), lr=0.003)
        p.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(to_numpy(lin.params["weight"])[0], p.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("make", [Adam, SGD])
def test_an_optimiser_restored_from_its_state_continues_the_same(make):
    """state_dict -> load_state_dict into a fresh optimiser: the next steps are bit-identical."""
    rng = np.random.default_rng(3)
    w0, grads = rng.standard_normal(4), rng.standard_normal((6, 4))
    net, lin = _one_param_net(w0)
    opt = make(net)
    for g in grads[:3]:
        opt.step(_grads(g), lr=0.01)
    state = opt.state_dict()
    again = make(net)
    again.load_state_dict({k: v.copy() for k, v in state.items()})
    saved_w = to_numpy(lin.params["weight"]).copy()
    for g in grads[3:]:
        opt.step(_grads(g), lr=0.01)
    straight = to_numpy(lin.params["weight"]).copy()
    lin.params["weight"][...] = on_device(saved_w)
    for g in grads[3:]:
        again.step(_grads(g), lr=0.01)
    np.testing.assert_array_equal(to_numpy(lin.params["weight"]), straight)
    assert all(isinstance(v, (np.ndarray, np.generic)) for v in state.values())   # on the host
