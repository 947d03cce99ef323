"""Softmax cross-entropy, the classification loss, with its gradient."""
import numpy as np

from .backend import get_array_module


def softmax(scores):
    """Row-wise softmax of (N, K) scores, shifted by the row max for stability."""
    xp = get_array_module(scores)
    z = scores - scores.max(axis=1, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(scores, y):
    """Mean cross-entropy of softmax(scores) against integer labels.

    scores: (N, K)   y: (N,) ints in [0, K)
    loss = -(1/N) sum_n log softmax(scores)[n, y_n]
    dscores = (softmax(scores) - onehot(y)) / N          (N, K)

    The label range is checked where it costs no synchronisation: labels given as a
    NumPy array are checked on the host before they move to the scores' device;
    labels already on a GPU are checked for dtype and shape only.
    """
    xp = get_array_module(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, K), got {tuple(scores.shape)}")
    N, K = scores.shape
    on_host = get_array_module(y) is np
    y = np.asarray(y) if on_host else y
    if y.shape != (N,):
        raise ValueError(
            f"labels must have shape ({N},) to match the scores, got {tuple(y.shape)}"
        )
    if y.dtype.kind not in "iu" or (on_host and N and (y.min() < 0 or y.max() >= K)):
        raise ValueError(
            f"labels must be integers in [0, {K}), got dtype {y.dtype}"
            + (
                f" and range [{y.min()}, {y.max()}]"
                if on_host and N and y.dtype.kind in "iu"
                else ""
            )
        )
    y = xp.asarray(y)
    z = scores - scores.max(axis=1, keepdims=True)
    log_probs = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    rows = xp.arange(N)
    loss = -log_probs[rows, y].mean()
    dscores = xp.exp(log_probs)
    dscores[rows, y] -= 1
    return loss, dscores / N
