"""Training checkpoints: what a run needs to continue, bit for bit, after it stops.

One ``.npz`` of plain numeric arrays, written by ``save_checkpoint`` and read back by
``load_checkpoint`` through ``weights.read_npz`` (which never unpickles):

    param/<name>      the network's parameters (Network.state_dict)
    <slot>/<name>, t  the optimiser's running state (SGD: velocity/; Adam: m/, v/ and t)
    rng               the random generator's state, as the bytes of its JSON
    history           one entry per epoch or step done, as the bytes of its JSON;
                      its length is where training resumes

``python -m tinycnn.train`` and ``python -m vis.fast_style_train`` write one as they go
and continue from it with ``--resume``. A file that is not a checkpoint of the run
resuming (truncated, forged, another network's or optimiser's) is one CheckpointError
naming the problem, and nothing of it is used: also one whose reading runs out of memory
or recursion depth (a forged .npy header, a nested JSON record), whose random state holds
numbers out of range, or whose history is not the one the run records (``check_history``).
"""
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .weights import StateDictError, check_state_dict, read_npz


class CheckpointError(ValueError):
    """A checkpoint that is not one of this training's (truncated, forged, another net's)."""


def save_checkpoint(path, net, optimizer, rng, history):
    """Write the parameters of ``net``, the state of ``optimizer`` and of ``rng`` (a NumPy
    Generator) and ``history`` (a list of what JSON holds) to ``path``, atomically."""
    arrays = {f"param/{k}": v for k, v in net.state_dict().items()}
    arrays.update(optimizer.state_dict())
    arrays.update(rng=_json_bytes(rng.bit_generator.state), history=_json_bytes(history))
    # written to a new file of a name no one chose (O_EXCL | O_NOFOLLOW: a link placed beside
    # the checkpoint is never written through), then moved into place: never half-written
    handle, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp",
                                   dir=Path(path).parent)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_checkpoint(path, net, optimizer, rng, check_history=None):
    """Restore what save_checkpoint wrote into ``net``, ``optimizer`` and ``rng``; returns the
    history. Everything is checked before anything is restored: CheckpointError otherwise.
    check_history(history): raises ValueError saying why unless the history is one that this
    training records."""
    try:
        stored = read_npz(path, error=CheckpointError)
        history, rng_state = _from_json(stored.pop("history")), _from_json(stored.pop("rng"))
        if not isinstance(history, list):
            raise ValueError(f"its history is a {type(history).__name__}, not a list")
        if check_history is not None:
            check_history(history)
        type(rng.bit_generator)().state = rng_state           # a state this generator can take?
        params = {k[len("param/"):]: stored.pop(k) for k in list(stored) if k.startswith("param/")}
        check_state_dict(dict(net.named_params()), params, "the checkpoint")
        _check_like(stored, optimizer.state_dict())          # what is left: the optimiser's
    except (CheckpointError, StateDictError) as e:
        raise CheckpointError(f"cannot resume from {path}: {e}") from None
    except (KeyError, ValueError, TypeError, RecursionError, OverflowError) as e:
        raise CheckpointError(f"cannot resume from {path}: not a checkpoint of this training "
                              f"({type(e).__name__}: {e})") from None
    except MemoryError:     # a header that asks the parser for more than there is
        raise CheckpointError(f"cannot resume from {path}: reading it asks for more memory "
                              "than there is; it is not a checkpoint of this training") from None
    net.load_state_dict(params)
    optimizer.load_state_dict(stored)
    rng.bit_generator.state = rng_state
    return history


def _json_bytes(value):
    return np.frombuffer(json.dumps(value).encode(), np.uint8)


def _from_json(array):
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ValueError(f"a JSON record is {array.dtype} {array.shape}, not bytes")
    return json.loads(array.tobytes().decode())


def _check_like(stored, own):
    """ValueError unless ``stored`` has the keys of the optimiser's own state, each array
    finite (counts not negative) and of its shape and dtype."""
    missing, extra = sorted(set(own) - set(stored)), sorted(set(stored) - set(own))
    if missing or extra:
        raise ValueError("its optimiser state is not this optimiser's"
                         + (f"; missing {', '.join(missing[:3])}" if missing else "")
                         + (f"; unexpected {', '.join(extra[:3])}" if extra else ""))
    for key, saved in stored.items():
        if saved.shape != own[key].shape or saved.dtype != own[key].dtype:
            raise ValueError(f"{key} is {saved.dtype} {saved.shape}, not {own[key].dtype} "
                             f"{own[key].shape}")
        if not np.isfinite(saved).all() or (saved.dtype.kind in "iu" and (saved < 0).any()):
            raise ValueError(f"{key} holds NaN, infinite or negative values")
