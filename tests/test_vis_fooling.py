"""Fooling images (Szegedy et al. 2014): the target class wins, or the run says it did not."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy

from .conftest import on_device


def test_fooling_image_flips_the_prediction():
    from vis.fooling import fooling_image
    # without ReLUs every class can win somewhere, so the target is reachable
    net = tc.Network([("conv", tc.Conv2d(3, 2, 3)), ("flatten", tc.Flatten()),
                      ("fc", tc.Linear(32, 3, seed=1))])
    x = on_device(np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32))
    target = (int(to_numpy(net(x)).argmax()) + 1) % 3
    fooled, steps = fooling_image(net, x, target, lr=0.1, max_steps=500)
    assert int(to_numpy(net(on_device(fooled))).argmax()) == target and steps > 0
    with pytest.raises(RuntimeError, match="still does not predict class"):
        fooling_image(net, x, target, lr=1e-6, max_steps=2)


def test_each_step_climbs_the_score_gradient_a_distance_lr():
    """dX = lr * g / ||g||: on a linear network g is the same everywhere, so after k steps the
    image has moved k * lr along g, g taken here by centred differences of the score."""
    from vis.fooling import fooling_image
    net = tc.Network([("conv", tc.Conv2d(3, 2, 3, seed=2, dtype=np.float64)),
                      ("flatten", tc.Flatten()),
                      ("fc", tc.Linear(32, 3, seed=3, dtype=np.float64))])
    x = np.random.default_rng(1).standard_normal((1, 3, 6, 6))
    target = (int(to_numpy(net(on_device(x))).argmax()) + 1) % 3
    fooled, steps = fooling_image(net, on_device(x), target, lr=0.05, max_steps=10000)
    g, h = np.zeros_like(x), 1e-3                       # linear: exact but for rounding
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up, down = (float(to_numpy(net(on_device(x + s * e)))[0, target]) for s in (1, -1))
        g[i] = (up - down) / (2 * h)
    moved = fooled - x
    assert steps > 1
    assert np.linalg.norm(moved) == pytest.approx(steps * 0.05, rel=1e-9)
    np.testing.assert_allclose(moved / np.linalg.norm(moved), g / np.linalg.norm(g), atol=1e-7)
