"""Networks: ordered collections of named layers.

    net = Network([("conv1", Conv2d(3, 16, 5, padding=2)), ("relu1", ReLU()), ...])
    scores = net(x)                                          # (N, classes)
    out, cache = net.forward(x, until="relu1", keep=["conv1"])
    cache.activations["conv1"]                               # any named layer's output
    dx, grads = net.backward(dout, cache, start="relu1", rule="guided")

Layers are addressed by dotted names; containers nest (a SqueezeNet Fire module is
a ``Sequential`` holding a squeeze conv and a ``Concat`` of two expand branches), so
"fire2", "fire2.squeeze" and "fire2.expand.3x3.relu" are all names. A ``Residual``
adds its input to its body's output (the residual blocks of fast style transfer).

``forward`` returns the output and a cache; the cache holds everything the backward
pass needs and is never stored on the network, so several forward passes (the
content and style images of style transfer) stay valid side by side. ``backward``
can start at any layer the forward pass ran: ``dout`` is then the gradient of the
objective with respect to that layer's output, and the layers after it are skipped.
The ReLU backward rule ("backprop", "deconvnet" or "guided") is an argument of each
backward call.
"""
import difflib
from dataclasses import dataclass, field

import numpy as np

from .backend import asarray, get_array_module, to_numpy
from .io.arrays import check_network_input, count_not_finite
# StateDictError is public here too
from .io.weights import StateDictError, check_state_dict, read_npz  # noqa: F401
from .layers import Dropout, Layer, ReLU, ShapeError


class UnknownLayerError(LookupError):
    """A layer name that the network does not have."""


def _split(name):
    return tuple(name.split(".")) if name else ()


class Container(Layer):
    """A layer made of named child layers."""

    def __init__(self, layers):
        self.layers = {}
        for name, layer in (layers.items() if isinstance(layers, dict) else layers):
            if not name or "." in name or name in self.layers:
                raise ValueError(f"layer names must be unique and contain no '.', got {name!r}")
            self.layers[name] = layer

    def forward(self, x):
        """Plain layer interface: (out, cache)."""
        return self.forward_path(x, (), (), "", {})

    def backward(self, dout, cache, rule="backprop"):
        """Plain layer interface: (dx, grads) with grads keyed by dotted names inside."""
        run = _Run(rule, True)
        return self.backward_path(dout, cache, (), (), "", run), run.grads

    # -- names and parameters -------------------------------------------------
    def named_layers(self, prefix=""):
        """Yield (dotted name, layer) for every layer inside, depth first, in order."""
        for name, layer in self.layers.items():
            yield prefix + name, layer
            if isinstance(layer, Container):
                yield from layer.named_layers(prefix + name + ".")

    def named_params(self):
        """Yield (dotted name, array) for every parameter, e.g. ("conv1.weight", w)."""
        for name, layer in self.named_layers():
            for key, value in layer.params.items():
                yield f"{name}.{key}", value

    def first_not_finite(self):
        """(dotted name, count) of the first parameter holding NaN or infinity, or None:
        checked before a training run saves anything (a diverged update)."""
        for key, value in self.named_params():
            if bad := count_not_finite(value):
                return key, bad
        return None

    def extra_repr(self):
        inner = "\n".join(f"  ({n}): " + repr(l).replace("\n", "\n  ")
                          for n, l in self.layers.items())
        return f"\n{inner}\n"


def _forward_child(layer, x, until, keep, name, acts):
    """Run one child: containers recurse, plain layers name themselves in shape errors."""
    if isinstance(layer, Container):
        out, cache = layer.forward_path(x, until, keep, name + ".", acts)
    else:
        try:
            out, cache = layer.forward(x)
        except ShapeError as e:
            raise ShapeError(f"layer '{name}': {e}") from None
    # a container the pass stopped inside has no output of its own
    if name in keep and not (until and isinstance(layer, Container)):
        acts[name] = out
    return out, cache


@dataclass
class _Run:
    """Settings of one backward pass, and the parameter gradients it collects."""
    rule: str
    param_grads: bool
    grads: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)   # {layer name: gradient} added on the way down


def _backward_child(layer, dout, cache, start, stop, name, run):
    """Backward through one child with the chosen ReLU rule; collect parameter gradients."""
    if isinstance(layer, Container):
        return layer.backward_path(dout, cache, start, stop, name + ".", run)
    if isinstance(layer, ReLU):
        dx, g = layer.backward(dout, cache, rule=run.rule)
    elif layer.params:      # layers with parameters skip their gradients when nobody wants them
        dx, g = layer.backward(dout, cache, param_grads=run.param_grads)
    else:
        dx, g = layer.backward(dout, cache)
    if run.param_grads:
        run.grads.update({f"{name}.{k}": v for k, v in g.items()})
    return dx


class Sequential(Container):
    """Children applied one after another: x -> layer1 -> layer2 -> ..."""

    def forward_path(self, x, until, keep, prefix, acts):
        caches = []
        for name, layer in self.layers.items():
            stop_here = bool(until) and until[0] == name
            x, cache = _forward_child(layer, x, until[1:] if stop_here else (), keep,
                                      prefix + name, acts)
            caches.append((name, cache))
            if stop_here:
                break
        return x, caches

    def backward_path(self, dout, caches, start, stop, prefix, run):
        ran = [name for name, _ in caches]
        if start:
            if start[0] not in ran:
                raise UnknownLayerError(
                    f"cannot start backward at '{prefix}{'.'.join(start)}': "
                    f"the forward pass stopped at '{prefix}{ran[-1]}' before it")
            caches = caches[:ran.index(start[0]) + 1]
        if stop and stop[0] not in [name for name, _ in caches]:
            raise UnknownLayerError(
                f"cannot stop backward at '{prefix}{'.'.join(stop)}': it does not "
                "come before the layer the backward pass starts from")
        for k in range(len(caches) - 1, -1, -1):
            name, cache = caches[k]
            sub_start = start[1:] if k == len(caches) - 1 else ()
            if prefix + name in run.extra:  # an objective also depends on this layer's output
                dout = dout + run.extra.pop(prefix + name)
            if stop and stop[0] == name:
                if len(stop) == 1:  # the gradient with respect to this layer's output
                    return dout
                return _backward_child(self.layers[name], dout, cache, sub_start, stop[1:],
                                       prefix + name, run)
            dout = _backward_child(self.layers[name], dout, cache, sub_start, (),
                                   prefix + name, run)
        return dout


class Concat(Container):
    """Parallel branches on the same input, outputs joined along channels.

    x: (N, C, H, W) -> branch_k(x): (N, C_k, H, W) -> out: (N, sum_k C_k, H, W)
    Backward splits dout by channels and adds the branches' input gradients.
    """

    def forward_path(self, x, until, keep, prefix, acts):
        xp = get_array_module(x)
        outs, caches = [], {}
        for name, layer in self.layers.items():
            stop_here = bool(until) and until[0] == name
            out, caches[name] = _forward_child(layer, x, until[1:] if stop_here else (), keep,
                                               prefix + name, acts)
            # stopped inside a branch: its output is the result, later branches skipped
            if stop_here:
                return out, (name, caches, None)
            outs.append(out)
        return xp.concatenate(outs, axis=1), (None, caches, [o.shape[1] for o in outs])

    def backward_path(self, dout, cache, start, stop, prefix, run):
        stopped, caches, sizes = cache
        branch = start[0] if start else stopped
        if branch is not None:  # dout belongs to one branch; the others get no gradient
            if branch not in caches:
                raise UnknownLayerError(f"cannot start backward at '{prefix}{'.'.join(start)}': "
                                        f"the forward pass stopped in branch '{prefix}{stopped}'")
            if stop and stop[0] != branch:
                raise UnknownLayerError(
                    f"cannot stop backward at '{prefix}{'.'.join(stop)}': no gradient "
                    f"reaches it from branch '{prefix}{branch}'")
            return _backward_child(self.layers[branch], dout, caches[branch], start[1:], stop[1:],
                                   prefix + branch, run)
        offsets = dict(zip(caches, np.cumsum([0] + sizes[:-1])))
        if stop:  # only the channels of the branch holding the stop layer matter
            name, size = stop[0], sizes[list(caches).index(stop[0])]
            part = dout[:, offsets[name]:offsets[name] + size]
            if len(stop) == 1:  # the branch itself: the gradient with respect to its output
                return part
            return _backward_child(self.layers[name], part, caches[name], (), stop[1:],
                                   prefix + name, run)
        dxs = [_backward_child(self.layers[name], dout[:, offsets[name]:offsets[name] + size],
                               sub_cache, (), (), prefix + name, run)
               for (name, sub_cache), size in zip(caches.items(), sizes)]
        return sum(dxs[1:], dxs[0])     # every branch read the same input: the gradients add


class Residual(Sequential):
    """A residual block (He et al. 2016): the body, a Sequential of named layers, plus
    a shortcut that adds the block's input to the body's output.

    x: (N, C, H, W) -> out = x + body(x): (N, C, H, W)   (the body keeps the shape)

    The sum is an Add of two branches, the identity and the body: backward sends
    dout down both and adds what comes back, dx = dout + d<body(x), dout>/dx. A
    gradient that starts or stops inside the body never meets the shortcut.
    """

    def forward_path(self, x, until, keep, prefix, acts):
        out, caches = super().forward_path(x, until, keep, prefix, acts)
        if until:  # stopped inside the body: that layer's output is the result, nothing is added
            return out, (True, caches)
        if out.shape != x.shape:
            where = f"layer '{prefix[:-1]}': " if prefix else ""
            raise ShapeError(f"{where}Residual needs a body that keeps the shape of its input, "
                             f"but it maps {tuple(x.shape)} to {tuple(out.shape)}")
        return x + out, (False, caches)

    def backward_path(self, dout, cache, start, stop, prefix, run):
        stopped, caches = cache
        body = super().backward_path(dout, caches, start, stop, prefix, run)
        if stopped or start or stop:  # dout belongs to (or is wanted at) a layer inside the body
            return body
        return dout + body


@dataclass
class Cache:
    """What one forward pass of a Network leaves for its backward pass."""
    layers: list
    until: str | None
    activations: dict = field(default_factory=dict)


class Network(Sequential):
    """A whole model: a Sequential with input checks, named access, saving and modes.

    ``meta`` holds what users of the model need to know about it: class names,
    input size, the mean and std the input is normalised with.
    """

    def __init__(self, layers, meta=None):
        super().__init__(layers)
        self.meta = dict(meta or {})

    def __call__(self, x):
        """The network's final output for a batch x."""
        return self.forward(x)[0]

    # -- names -----------------------------------------------------------------
    def names(self):
        """Every addressable layer name, in forward order."""
        return [name for name, _ in self.named_layers()]

    def layer(self, name):
        """The layer called ``name`` (dotted for nested layers)."""
        layers = dict(self.named_layers())
        if name not in layers:
            close = difflib.get_close_matches(str(name), layers, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownLayerError(f"unknown layer {name!r}{hint} (net.names() lists all "
                                    f"{len(layers)}: {', '.join(list(layers)[:12])}"
                                    f"{', ...' if len(layers) > 12 else ''})")
        return layers[name]

    # -- forward and backward ----------------------------------------------------
    def forward(self, x, until=None, keep=()):
        """Run the network on a batch.

        x:     (N, C, H, W) floating point
        until: stop after this named layer (default: run to the end)
        keep:  names of layers whose outputs to return in ``cache.activations``
        Returns (out, cache): the output of the last layer run and a ``Cache``.
        """
        check_network_input(x, next((p for _, p in self.named_params()), None))  # io/arrays.py
        keep = (keep,) if isinstance(keep, str) else tuple(keep)
        for name in keep + ((until,) if until else ()):
            self.layer(name)  # unknown names fail here, with suggestions
        acts = {}
        out, caches = self.forward_path(x, _split(until), keep, "", acts)
        missing = [k for k in keep if k not in acts]
        if missing:
            raise UnknownLayerError(f"layer(s) {', '.join(missing)} come after '{until}', "
                                    "where the forward pass stopped")
        return out, Cache(caches, until, acts)

    def activations(self, x, names):
        """{name: output} for the given layer names, running only as far as needed."""
        names = [names] if isinstance(names, str) else list(names)
        for name in names:
            self.layer(name)
        _, cache = self.forward(x, until=self.last_ready(names), keep=names)
        return cache.activations

    def features(self, x, layer, *, batch_size=256, log=None):
        """Flattened activations of ``layer`` for a host batch, a few images at a time.

        x: (N, C, H, W) NumPy -> (N, D) float64 NumPy, D = the layer's output size
        (the feature vectors of nearest neighbours, embeddings and clustering).
        """
        out = []
        for start in range(0, len(x), batch_size):
            act = self.activations(asarray(x[start:start + batch_size]), layer)[layer]
            out.append(to_numpy(act).reshape(len(act), -1).astype(np.float64))
            if log:
                log(f"features {layer}: {min(start + batch_size, len(x))}/{len(x)}")
        return np.concatenate(out)

    def last_ready(self, names):
        """Of the given layers, the one whose output is computed last in a forward pass."""
        order = self.names()  # parents before children; a parent's output is ready after them

        # a parent ties with its last child, but its output (a sum, a concat) comes later
        def ready(name):
            last = max(i for i, m in enumerate(order) if m == name or m.startswith(name + "."))
            return last, -name.count(".")
        return max(names, key=ready)

    def backward(self, dout, cache, start=None, rule="backprop", param_grads=True, stop=None):
        """Backpropagate ``dout`` from a named layer to the input (or to ``stop``).

        dout:  gradient with respect to the output of ``start`` (default: the last
               layer the forward pass ran), same shape as that output; or a dict
               {layer: gradient} when an objective depends on several layers (style
               transfer): backward starts at the last of them and adds each other
               gradient as it passes that layer
        rule:  the ReLU backward rule, "backprop" (true gradient), "deconvnet" or "guided"
        stop:  a layer before ``start``: return the gradient with respect to its output
               instead of the input (Grad-CAM needs it), skipping the layers before it
        Returns (dx, grads): dx like the input (or stop's output); grads {param name:
        gradient} for every parameter (zeros where no gradient was computed), or {}
        when param_grads is False.
        """
        extra = {}
        if isinstance(dout, dict):
            for name in dout:
                self.layer(name)
            start = self.last_ready(list(dout))
            extra = {k: v for k, v in dout.items() if k != start}
            dout = dout[start]
        start = start or cache.until
        if start:
            self.layer(start)
            if cache.until and cache.until.startswith(start + "."):
                raise UnknownLayerError(
                    f"cannot start backward at '{start}': the forward pass stopped "
                    f"inside it, at '{cache.until}', so its output was never computed")
        if stop:
            self.layer(stop)
        run = _Run(rule, param_grads, extra=extra)
        dx = self.backward_path(dout, cache.layers, _split(start), _split(stop), "", run)
        if run.extra:
            raise UnknownLayerError(f"gradients for {', '.join(run.extra)} were never used: "
                                    f"the backward pass from '{start}' does not pass through them")
        if not param_grads:
            return dx, {}
        xp = get_array_module(dout)
        return dx, {k: run.grads[k] if k in run.grads else xp.zeros_like(p)
                    for k, p in self.named_params()}

    # -- modes, dtype, device ----------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active) or, with mode=False, evaluation mode."""
        for _, layer in self.named_layers():
            if isinstance(layer, Dropout):
                layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    def astype(self, dtype):
        """Convert every parameter to ``dtype`` (float64 for gradient checks)."""
        for _, layer in self.named_layers():
            layer.params = {k: v.astype(dtype) for k, v in layer.params.items()}
        return self

    def to_device(self):
        """Move every parameter onto the active backend (see tinycnn.backend)."""
        for _, layer in self.named_layers():
            layer.params = {k: asarray(v) for k, v in layer.params.items()}
        return self

    # -- saving and loading -------------------------------------------------------
    def state_dict(self):
        """{param name: NumPy array} (copies on the host)."""
        return {k: to_numpy(v).copy() for k, v in self.named_params()}

    def load_state_dict(self, state, source="state dict"):
        """Set every parameter from ``state``, strictly: every key present, none extra,
        every shape equal, every value finite. Errors name the key (and both shapes)."""
        check_state_dict(dict(self.named_params()), state, source)
        for name, layer in self.named_layers():
            layer.params = {k: asarray(state[f"{name}.{k}"], v.dtype)
                            for k, v in layer.params.items()}
        return self

    def save(self, path):
        """Write every parameter to an .npz file, keyed by name."""
        np.savez(path, **self.state_dict())

    def load(self, path):
        """Read parameters saved by ``save`` (strictly, see load_state_dict)."""
        return self.load_state_dict(read_npz(path), source=str(path))
