"""Command-line plumbing shared by the ``python -m vis.<technique>`` entry points:
choosing the model, reading input images, naming the target class, the output path.
Technique modules stay about their technique; this is the only place that knows
where demo images live.

Bad input (a bad argument, a missing file, an unknown layer) ends in one line
``error: ...`` on stderr and exit status 2, argparse's convention, never a traceback.
Arguments are checked before any heavy work: numbers by their argparse types
(``count``, ``index``, ``positive``, from tinycnn.io.args, which ``python -m tinycnn.train``
shares), layers and channels as soon as the model is loaded.
"""
import errno
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io import images
# the parser and the argument types, shared with tinycnn.train; vis modules use them as cli.<name>
from tinycnn.io.args import (USAGE_ERROR, ArgumentParser, HelpFormatter, count, fail,  # noqa: F401
                             index, non_negative, one_line_errors, positive, reading)
from tinycnn.io.images import class_index, deprocess, load_image, preprocess
from tinycnn.io.sample_images import OPTIONAL_NAMES, PROJECT_IMAGES

DEFAULT_PHOTO = "chelsea.png"     # a cat (scikit-image, CC0; in images/photos)

# What every technique uses on each model unless told otherwise: the one place that
# knows both models (a third model is one more row). Layers are where each technique
# shows most: Grad-CAM's last conv block, a neuron mid-network for guided backprop,
# mid-level layers for DeepDream and patches, the last features for neighbours.
MODEL_DEFAULTS = {
    "squeezenet": dict(
        attribution_layer="fire9", neuron_layer="fire6", dream_layer="fire5",
        patches_layer="fire5", feature_layer="pool10",
        stride_grid=4,              # conv1 and its pool, stride 2 each: a 4-px grid in gradients
        classes=("flamingo", "billiard table", "goose", "tarantula"),   # class visualisation
        class_lr=25.0,              # CS231n's gradient-ascent step for 224x224 ImageNet images
        fool_target="stingray",
        images="photos",            # default image set of max_patches and neighbors
        patch_scales=(1, 2),        # max_patches: few images, so each is searched at two sizes
        patch_inside=1.0,           # max_patches: no padding in a patch (fields are 63 px of 224)
    ),
    "cifar10": dict(
        attribution_layer="relu5", neuron_layer="conv5", dream_layer="relu4",
        patches_layer="relu4", feature_layer="relu6",
        stride_grid=2,              # the first 2x2 max pool
        classes=None,               # all ten
        class_lr=1.0,               # chosen by looking: 25 saturates 32x32 images at once
        fool_target="ship",
        images="cifar",
        patch_scales=(1,),          # 32-px images: twice the size would be blur
        patch_inside=0.0,           # relu4's 24-px fields overhang 32-px images at 60 of 64 places
    ),
}


def model_default(model, key):
    """MODEL_DEFAULTS[model][key], or a clear error for a model with no row."""
    if model not in MODEL_DEFAULTS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODEL_DEFAULTS)}")
    return MODEL_DEFAULTS[model][key]


def default_images(args):
    """The model's default image set (max_patches, neighbors): CIFAR-10 test images, or every
    photo, painting and texture in the images folder."""
    if model_default(args.model, "images") == "cifar":
        return cifar_images(args.count)
    return expand_folders([str(images_dir() / folder)
                           for folder in ("photos", "styles", "textures")])


def expand_folders(specs):
    """Image specs with every folder replaced by the image files in it, sorted by name."""
    out = []
    for spec in specs:
        if not Path(spec).is_dir():
            out.append(spec)
            continue
        files = sorted(str(f) for f in Path(spec).iterdir()
                       if f.is_file() and f.suffix.lower() in images.extensions())
        if not files:
            raise FileNotFoundError(f"the folder {spec} holds no image files")
        out += files
    return out


def _caller_module():
    """The dotted name of the module that called parser() (vis.saliency, also when it runs as
    __main__)."""
    import inspect
    caller = inspect.stack()[2].frame.f_globals
    spec = caller.get("__spec__")
    return spec.name if spec is not None else caller.get("__name__")


def parser(description, *, target=True, layer=None, layers=False, channel=False, image=True):
    """An ArgumentParser with the options every technique shares (image=False: no --image,
    for techniques that start from noise or read a data set). layer: the MODEL_DEFAULTS key
    of the technique's default layer (e.g. "dream_layer"), filled in by parse_args;
    layers: --layer takes several names (args.layer is then always a list); target="per_image":
    --target takes one class for all images or one per image (a list; see ``targets``)."""
    p = ArgumentParser(description=description, module=_caller_module())
    p.add_argument("--model", default="squeezenet",
                   help="squeezenet (ImageNet) or cifar10 (default: %(default)s)")
    if image:
        p.add_argument("--image", "--images", nargs="+", default=None,
                       help="image files or folders of them, or cifar:<index> for CIFAR-10 test "
                            f"images (default: {DEFAULT_PHOTO}, or cifar:0..3 on cifar10; a bare "
                            "name is looked up in $TINYCNN_IMAGES_DIR, then images/)")
    if target == "per_image":
        p.add_argument("--target", nargs="+", default=None,
                       help="class index or (part of a) class name for every image, or one per "
                            f"image in order ({PREDICTED!r}: that image's predicted class; "
                            "default: the predicted class)")
    elif target:
        p.add_argument("--target", default=None,
                       help="class index or (part of a) class name (default: the predicted class)")
    if layer is not None:
        shown = ", ".join(f"{row[layer]} on {model}" for model, row in MODEL_DEFAULTS.items())
        p.add_argument("--layer", default=None, nargs="+" if layers else None,
                       help=f"layer name{'s, one panel each' if layers else ''} "
                            f"(default: {shown})")
        p.set_defaults(layer_default=layer)
    if channel:
        p.add_argument("--channel", type=index, default=None,
                       help="channel of the layer (default: the most active)")
    p.add_argument("--weights", default=None, help="weights .npz of the model (default: found in "
                   "weights/ or $TINYCNN_WEIGHTS_DIR)")
    p.add_argument("--out", default=None, help="PNG to write (default: under figures/)")
    p.add_argument("--seed", type=index, default=0, help="random seed (default: %(default)s)")
    return p


def parse_args(p, argv=None, doc=None, *, out_is_folder=False):
    """Parse, then check at once (not after a long run) that no argument is an empty string
    and that --out is not a folder (unless out_is_folder) in a folder that can be written.
    doc: the technique module's docstring, whose example commands end --help."""
    examples = [line.strip() for line in (doc or "").splitlines()
                if line.strip().startswith("python -m")]
    if examples and p.epilog is None:
        p.epilog = "example:\n  " + "\n  ".join(examples)
    args = p.parse_args(argv)
    key = vars(args).pop("layer_default", None)
    if key and args.layer is None:
        # an unknown model fails when it is loaded
        args.layer = MODEL_DEFAULTS.get(args.model, MODEL_DEFAULTS["squeezenet"])[key]
        if any(a.dest == "layer" and a.nargs == "+" for a in p._actions):
            args.layer = [args.layer]
    for name, value in vars(args).items():
        for v in value if isinstance(value, list) else [value]:
            if v == "":
                p.error(f"argument --{name.replace('_', '-')}: an empty string")
    out = getattr(args, "out", None)
    if out_is_folder:
        return args
    if out is not None and Path(out).is_dir():
        p.error(f"argument --out: {out} is a folder; give the path of the PNG to write")
    suffix = Path(out).suffix.lower() if out is not None else ".png"
    if suffix not in OUT_EXTENSIONS or suffix not in Image.registered_extensions():
        p.error(f"argument --out: {out} does not end in an extension of a colour image format; "
                "end it in .png (or .jpg)")
    check_writable(Path(out).parent if out else Path("figures"))
    return args


# what --out may end in: formats that Pillow writes RGB pictures in (not XBM's bilevel, not
# a PDF or an icon, which it also accepts, found only after the whole computation)
OUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_writable(folder):
    """Create ``folder`` if needed; OSError naming it and the cause unless files can go there."""
    folder = Path(folder)
    there = next((p for p in (folder, *folder.parents) if p.exists()), folder)   # what exists
    which = "it" if there == folder else there
    if not there.is_dir():
        raise NotADirectoryError(f"cannot write to the output folder {folder}: {which} is a file, "
                                 "not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a new file of a name no one chose (O_CREAT | O_EXCL | O_NOFOLLOW): a link placed
        # there beforehand is never followed, so nothing is created outside the folder
        handle, probe = tempfile.mkstemp(prefix=".tinycnn-write-test-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as e:
        # /proc and /sys say "No such file or directory" to a new file in a folder that is there
        why = f"{which} does not accept new files" if e.errno == errno.ENOENT else e.strerror or e
        raise OSError(f"cannot write to the output folder {folder}: {why}") from None


def load_net(args, name=None):
    """The model the command line asks for (--model, --weights); name: the one model this
    technique runs on (its presets are tuned to it), whatever --model says."""
    from tinycnn.models import MODELS, load_model
    if name and args.model != name:
        raise ValueError(f"--model {args.model}: this technique runs on {name} only (its settings "
                         "are tuned to it)")
    model = name or args.model
    # every error of reading --weights names it (an unknown model's is about the model)
    given = args.weights if args.weights and model in MODELS else None
    with reading(given or f"the {model} weights", name_it=given is not None):
        return load_model(model, args.weights)


def run(main):
    """Run a technique's main(): bad input ends in one line on stderr (exit 2), not a traceback
    (tinycnn.io.args.one_line_errors, which python -m tinycnn.train shares)."""
    from tinycnn.engine.malloc import keep_freed_memory
    from tinycnn.engine.threads import set_blas_threads, threads_for_commands
    with one_line_errors("a smaller --size, image, scale or count needs less"):
        set_blas_threads(threads_for_commands())   # one, unless told: tinycnn/engine/threads.py
        keep_freed_memory()                 # no fresh pages each pass: tinycnn/engine/malloc.py
        # an overflow is told in one line where it matters (a non-finite input to the net, a
        # picture without colours: images.NOT_FINITE), not as NumPy's warnings before it
        with np.errstate(over="ignore", invalid="ignore"):
            main()


def image_shapes(specs):
    """(H, W) of each image of ``specs`` that loading will not refuse, from its header alone:
    what a memory estimate needs before any pixel is decoded."""
    return [(h, w) for h, w in memory.image_shapes(specs, find_image, images.FORMATS)
            if max(h, w) <= images.MAX_ASPECT * min(h, w)]


def read_image(spec):
    """An image file (a path, or a name ``find_image`` looks up) as uint8 RGB (H, W, 3); what
    its reader raises names the file."""
    path = find_image(spec)
    with reading(path):
        return load_image(path)


def load_one(net, path, size, crop=False):
    """One image file as a normalised (1, 3, H, W) batch on the backend, its short side ``size``
    (crop: centre-cropped to size x size)."""
    rgb = read_image(path)
    return backend.asarray(preprocess(rgb, size=size, crop=crop, mean=net.meta["mean"],
                                      std=net.meta["std"], name=path))


def add_size_option(p):
    """--size: techniques that can see the whole photo (the networks are fully convolutional)."""
    p.add_argument("--size", type=count, default=None,
                   help="short side in px of the whole, uncropped photos (default: the model's "
                   "input size, cropped)")


def load_uncropped(net, specs, size, *, classify=False):
    """Each photo of ``specs`` (default: DEFAULT_PHOTO) whole, uncropped, as its own normalised
    (1, 3, H, W) batch, short side ``size``: the photos' shapes differ, so they are not stacked.
    classify: the technique needs class scores, which a net with a fully connected classifier
    (a Flatten layer) gives for its input size only."""
    return [load_one(net, find_image(spec), size)
            for spec in check_uncropped(net, specs, size, classify=classify)]


def check_uncropped(net, specs, size, *, classify=False):
    """The image specs of load_uncropped (folders expanded), after the checks that need no
    pixels: ValueError unless this model can take whole photos of short side ``size``."""
    from tinycnn.layers import Flatten
    if classify and any(isinstance(layer, Flatten) for _, layer in net.named_layers()):
        side = net.meta["input_size"]
        raise ValueError(f"--size: this model classifies {side}x{side} images only (its "
                         "classifier is fully connected); leave --size out")
    if classify and size < net.meta["input_size"]:   # a photo the layers shrink to nothing: say so
        try:
            net(backend.asarray(np.zeros((1, 3, size, size), np.float32)))
        except ValueError:
            raise ValueError(f"--size {size} is too small for this model: its layers shrink a "
                             f"photo of {size} px to nothing (its input size is "
                             f"{net.meta['input_size']})") from None
    specs = expand_folders(specs or [DEFAULT_PHOTO])
    if any(spec.startswith("cifar:") for spec in specs):
        raise ValueError("--size needs photos, not CIFAR-10 images: give them with --image")
    return specs


def check_side(net, h, w, layer, advice):
    """ValueError ending in ``advice`` unless an h x w image passes the layers up to ``layer``
    (each kernel needs at least its own size of input)."""
    try:
        net.activations(backend.asarray(np.zeros((1, 3, max(h, 0), max(w, 0)), np.float32)), layer)
    except ValueError as e:
        raise ValueError(f"{h}x{w} px is too small for the layers up to {layer} ({e}); "
                         f"{advice}") from None


def check_channel(net, layer, *channels):
    """A clear error unless ``layer`` exists and has every one of ``channels`` (None: any)."""
    net.layer(layer)
    channels = [c for c in channels if c is not None]
    if not channels:
        return
    side = net.meta["input_size"]
    x = backend.asarray(np.zeros((1, 3, side, side), np.float32))
    have = net.activations(x, layer)[layer].shape[1]
    for channel in channels:
        if not 0 <= channel < have:
            raise ValueError(f"channel {channel} is out of range: layer '{layer}' has {have} "
                             f"channels (0-{have - 1})")


def images_dir():
    """$TINYCNN_IMAGES_DIR if set, else the repository's images/ (photos/, styles/, textures/)."""
    folder = os.environ.get("TINYCNN_IMAGES_DIR")
    return Path(folder) if folder else PROJECT_IMAGES


def find_image(spec):
    """An image path as given, else looked up in $TINYCNN_IMAGES_DIR and the repository's
    images/, each with its photos/ (so that ``chelsea.png`` or ``styles/starry_night.jpg``
    work from anywhere)."""
    folders = [] if Path(spec).is_absolute() else list(dict.fromkeys([images_dir(),
                                                                      PROJECT_IMAGES]))
    places = [Path(spec)] + [path for folder in folders
                             for path in (folder / spec, folder / "photos" / spec)]
    for path in places:
        if path.is_file():
            return path
    if Path(spec).is_dir():
        raise IsADirectoryError(f"{spec} is a folder, not an image file")
    if not folders:
        raise FileNotFoundError(f"no image file at {spec}")
    looked = ", ".join(str(p.parent) for p in places[1:])
    how = ("`make images` fetches it" if Path(spec).name in OPTIONAL_NAMES
           else "give a path" if os.environ.get("TINYCNN_IMAGES_DIR")
           else "give a path, or set TINYCNN_IMAGES_DIR to a folder of images")
    raise FileNotFoundError(f"no image file at {spec} (also looked in {looked}); {how}")


CIFAR10_TEST_IMAGES = 10000


def cifar_images(count):
    """Image specs of the first ``count`` CIFAR-10 test images."""
    if count > CIFAR10_TEST_IMAGES:
        raise ValueError(f"--count {count} is more than the {CIFAR10_TEST_IMAGES} CIFAR-10 test "
                         "images")
    return [f"cifar:{i}" for i in range(count)]


def load_inputs(net, specs):
    """(x, rgb): the normalised batch (N, 3, S, S) on the active backend and the uint8 images."""
    size, mean, std = net.meta["input_size"], net.meta["mean"], net.meta["std"]
    if specs is None:
        specs = cifar_images(4) if size == 32 else [DEFAULT_PHOTO]
    xs = []
    cifar = None
    for spec in expand_folders(specs):
        if spec.startswith("cifar:"):
            if cifar is None:
                from tinycnn.io.data import load_cifar10
                with reading("the CIFAR-10 test batch", name_it=False):
                    cifar = load_cifar10("test")[0]
            index = spec[6:]
            if not (index.isascii() and index.isdigit()) or int(index) >= len(cifar):
                raise ValueError(f"bad image {spec!r}: cifar:<index> takes a test-image index "
                                 f"0-{len(cifar) - 1}")
            rgb = np.rint(cifar[int(index)].transpose(1, 2, 0) * 255).astype(np.uint8)
            xs.append(preprocess(rgb, size=size, mean=mean, std=std))
        else:
            xs.append(preprocess(read_image(spec), size=size, mean=mean, std=std, name=spec))
    x = np.concatenate(xs)
    return backend.asarray(x), [deprocess(im, mean=mean, std=std) for im in x]


PREDICTED = "predicted"


def one_target_per_image(p, target, count):
    """A per_image --target (None, or a list of one class or ``count``) as ``count`` classes
    (None: the prediction); any other number of classes is parser p's error."""
    wanted = target or [None]
    if len(wanted) not in (1, count):
        p.error(f"argument --target: {len(wanted)} classes for {count} images; give one for all "
                "or one per image")
    return wanted * count if len(wanted) == 1 else wanted


def targets(net, x, target):
    """Target class per image: the given one (index or name), else each image's prediction; a
    list gives one per image, PREDICTED among them standing for that image's prediction."""
    wanted = target if isinstance(target, list) else [target] * len(x)
    if len(wanted) != len(x):
        raise ValueError(f"{len(wanted)} target classes for {len(x)} images: give one for all "
                         "or one per image")
    if any(t in (None, PREDICTED) for t in wanted):
        predicted = backend.to_numpy(net(x)).argmax(axis=1)
    classes = net.meta["classes"]
    return np.array([predicted[k] if t in (None, PREDICTED) else class_index(t, classes)
                     for k, t in enumerate(wanted)])


def short_name(net, k):
    return net.meta["classes"][k].split(",")[0]


def output_path(args, default_name):
    return args.out or f"figures/{default_name}_{args.model}.png"
