"""The whole lecture in one command: every technique's figure, then a gallery page.

Each entry of FIGURES is one figure: the command that draws it, what it shows and the
paper it comes from. It is the one place where a figure's command is written: ``make
figures`` runs them all, ``make saliency`` runs ``--only saliency``, one per core at a
time (``--jobs``; a progress line when each starts and ends: every command computes on
one core, so on an idle machine the other cores would wait); then the gallery writes
``figures/index.html`` with every figure and its caption, which shows the command.
Observations about the figures (what a cut found, which layer drew what) belong in
those captions, not in the techniques' docstrings. ``--print`` prints the commands instead of
running them, to run or change by hand. ``--fast`` adds each figure's reduced-size,
few-iteration options, so that every figure's code runs in a few minutes (CI does
this); ``--args`` appends options to every command; ``--thumbnails docs`` writes the
README's small PNGs.

    python -m vis.gallery                  (make figures)
    python -m vis.gallery --fast           (make figures FAST=1)
    python -m vis.gallery --jobs 1         (make figures JOBS=1: one figure at a time)
    python -m vis.gallery --only saliency occlusion
    python -m vis.gallery --only saliency --print
    python -m vis.gallery --only fooling --args='--seed 1'     (make fooling ARGS='--seed 1')
    python -m vis.gallery --thumbnails docs
"""
import html
import re
import shlex
import shutil
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


@dataclass
class Figure:
    file: str                 # PNG name under the output folder
    target: str               # the make target that draws it
    title: str
    shows: str                # what a reader sees
    paper: str                # citation, and a link
    url: str
    args: list                # python -m vis.<args[0]> args[1:], then --out <folder>/<file>
    fast: list = field(default_factory=list)       # appended with --fast
    needs: tuple = ()         # "squeezenet", "cifar10-data", "photos"
    thumbnail: bool = True    # False where the inputs' licence keeps it out of docs/
    crop: tuple = (0, 1, 0, 1)   # the part its thumbnail shows: top, bottom, left, right

    def argv(self, out_dir="figures", *, fast=False, extra=()):
        """The arguments of ``python -m`` that draw this figure into ``out_dir``."""
        return [f"vis.{self.args[0]}", *self.args[1:], "--out", str(Path(out_dir) / self.file),
                *(self.fast if fast else []), *extra]

    def command(self, out_dir="figures", *, fast=False, extra=()):
        """The command line (the caption shows it with the defaults: what ``make <target>``
        runs)."""
        return "python -m " + shlex.join(self.argv(out_dir, fast=fast, extra=extra))


SQ, DATA = "squeezenet", "cifar10-data"
MAX_JOBS = 4
DEMO = ("filters_cifar10_conv1.png", "training_curve.png")   # make demo: the shipped weights alone
# the CC0 / public-domain images the repository ships (images/README.md): figures use only these
FREE_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "grace_hopper.jpg", "rocket.jpg"]
FREE_PAINTINGS = ["styles/starry_night.jpg", "styles/the_scream.jpg", "styles/composition_vii.jpg"]
FREE_TEXTURES = ["textures/brick.png", "textures/grass.png", "textures/gravel.png"]
SIMONYAN = ("Simonyan, Vedaldi & Zisserman 2014, Deep Inside Convolutional Networks",
            "https://arxiv.org/abs/1312.6034")
GATYS_TEXTURE = ("Gatys, Ecker & Bethge 2015, Texture Synthesis Using Convolutional Neural "
                 "Networks", "https://arxiv.org/abs/1505.07376")

GATYS_STYLE = ("Gatys, Ecker & Bethge 2016, Image Style Transfer Using Convolutional Neural "
               "Networks", "https://openaccess.thecvf.com/content_cvpr_2016/html/"
               "Gatys_Image_Style_Transfer_CVPR_2016_paper.html")
GATYS_CONTROL = ("Gatys et al. 2017, Controlling Perceptual Factors in Neural Style Transfer",
                 "https://arxiv.org/abs/1611.07865")
FIGURES = [
    Figure("filters_cifar10_conv1.png", "filters", "First-layer filters",
           "The 32 learnt 5x5 RGB filters of the CIFAR-10 net's first convolution, each scaled to "
           "its own range: a few smooth colour blobs and opponent colours, most of them per-pixel "
           "noise with no clear edge. This small net, trained by tinycnn on 32-px images, did not "
           "learn the lecture's clean edge detectors; SqueezeNet's first layer, trained on "
           "ImageNet (next figure), did.",
           "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs (fig. 3)",
           "https://papers.nips.cc/paper/4824",
           ["filters", "--model", "cifar10", "--layer", "conv1"]),
    Figure("filters_squeezenet_conv1.png", "filters", "First-layer filters of an ImageNet net",
           "SqueezeNet's 64 first-layer filters (3x3 at stride 2, trained on ImageNet), each "
           "scaled to its own range and sorted by how much of the tile is a pattern in space "
           "rather than one flat colour: the first rows are mostly light and dark bars, steps "
           "and spots, horizontal, vertical and diagonal, with opponent colours (blue against "
           "orange, red against blue) among them; the last row is flat colours and gentle "
           "gradients. These are the lecture's edge and colour detectors at the smallest size a "
           "filter can have; AlexNet's, in the lecture, are 11x11, wide enough for Gabor-like "
           "stripes.",
           "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs (fig. 3)",
           "https://papers.nips.cc/paper/4824",
           ["filters", "--model", "squeezenet", "--layer", "conv1", "--sort"], needs=(SQ,)),
    Figure("filters_cifar10_conv2.png", "filters", "Higher-layer filters",
           "conv2's 3x3 weights, one row per filter, one column per input channel: hard to read, "
           "which is why the techniques below look at activations and gradients instead.",
           "CS231n, Visualizing and Understanding (lecture 13)", "http://cs231n.stanford.edu/",
           ["filters", "--model", "cifar10", "--layer", "conv2", "--max-out", "16",
            "--max-in", "16"],
           crop=(0, .5, 0, .5)),
    Figure("training_curve.png", "training_curve", "Training the CIFAR-10 net",
           "Loss and accuracy per epoch of the net that tinycnn trained itself and ships in "
           "weights/.",
           "Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images (CIFAR-10)",
           "https://www.cs.toronto.edu/~kriz/cifar.html", ["training_curve"]),
    Figure("neighbors_cifar10.png", "neighbors", "Last-layer nearest neighbours",
           "Test images (left column) and their six nearest neighbours among the 10,000 test "
           "images, by the distance of 256-d relu6 features (middle) and by raw pixels (right), "
           "each neighbour framed green when its class is the query's and red when not. Over 1000 "
           "queries (the title), 73% of the feature neighbours share the query's class and 25% of "
           "the pixel neighbours (chance: 10%). In feature space the horse and the truck find six "
           "of their class in other poses and colours, the dog five, the cat four, the airliner "
           "three (the rest ships) and the yellow car two (the rest planes and a deer); in pixel "
           "space the neighbours share colours and layout, whatever the class.",
           "Krizhevsky, Sutskever & Hinton 2012 (fig. 4)", "https://papers.nips.cc/paper/4824",
           ["neighbors", "--model", "cifar10"], ["--count", "1000"], needs=(DATA,),
           thumbnail=False),
    Figure("embedding_cifar10.png", "embedding", "PCA and t-SNE of features",
           "relu6 features of CIFAR-10 test images in 2-D: PCA (top left) and t-SNE (bottom left) "
           "coloured by class, and the t-SNE layout snapped to an image grid (right).",
           "van der Maaten & Hinton 2008, Visualizing Data using t-SNE",
           "https://www.jmlr.org/papers/v9/vandermaaten08a.html",
           ["embedding", "--model", "cifar10"],
           ["--count", "300", "--iterations", "250", "--grid", "10"],
           needs=(DATA,), thumbnail=False),
    Figure("max_patches_squeezenet.png", "max_patches",
           "Maximally activating patches (SqueezeNet)",
           "For the five most selective of fire5's 256 channels (rows; selectivity: how many "
           "standard deviations a row's activations stand above the channel's mean; a channel half"
           " of whose crops repeat a row above, as a second eye channel's do, is passed over), the"
           " 63x63 receptive-field crops where each channel fires most, among the 11 photos, "
           "paintings and textures the repository ships, each searched whole and enlarged 2 and 3 "
           "times in tiles (154 views): the top 6, at most two per image, whose fields overlap by "
           "at most a quarter, and only fields inside the image. The first row is eyes in every "
           "crop; the next three share a kind more loosely: angular lattices (gravel, a launch "
           "tower) in the second, round shapes (a badge, eyes, a painted ring) in the third, "
           "strokes and stripes (Starry Night, the table's grain, the saucer's rim, a uniform's "
           "braid) in the fourth; the fifth mixes. A row's fire5 feature vectors have a mean "
           "cosine similarity of 0.67, against 0.48 for random patches. The lecture's rows come "
           "from 50,000 images; with 11, a channel's best crops run out after a few.",
           "Springenberg et al. 2015, Striving for Simplicity (fig. 4); Girshick et al. 2014",
           "https://arxiv.org/abs/1412.6806",
           ["max_patches", "--model", "squeezenet", "--layer", "fire5", "--pick", "5",
            "--per-image", "2", "--overlap", "0.25", "--scales", "1", "2", "3",
            "--k", "6", "--image", *FREE_PHOTOS, *FREE_PAINTINGS, *FREE_TEXTURES],
           ["--pick", "2", "--k", "4"], needs=(SQ,), crop=(0, .5, 0, 1)),
    Figure("max_patches_cifar10.png", "max_patches", "Maximally activating patches (CIFAR-10 net)",
           "For the first eight relu4 channels (rows, taken in order, not chosen), the crops of "
           "2000 test images where each channel fires most; grey bars are where a receptive "
           "field runs off its 32-px image (the zero padding, drawn as the mean colour). Rows 1 "
           "and 5 answer to dark diagonal edges such as wings against the sky, row 3 to dark "
           "diagonals more loosely; the other five to cars: silver ones in row 2, red and yellow"
           " ones in row 6, of mixed colours in the rest.",
           "Springenberg et al. 2015, Striving for Simplicity (fig. 4)",
           "https://arxiv.org/abs/1412.6806",
           ["max_patches", "--model", "cifar10", "--layer", "relu4",
            "--channels", "0", "1", "2", "3", "4", "5", "6", "7"],
           ["--count", "200"], needs=(DATA,), thumbnail=False),
    Figure("occlusion_squeezenet.png", "occlusion", "Occlusion",
           "A grey square a quarter of the image wide slides over it in 14-px steps: the middle "
           "panel is the predicted class's probability with the square at each place, on a 0-1 "
           "scale; the right panel tints where covering costs most (the evidence the network "
           "relies on), the rest untinted. The cup's evidence is the cup: covering it drops "
           "'espresso' from 0.87 to 0.11. The cat's is weaker: the net splits its belief "
           "between 'Egyptian cat' (0.45), 'tabby' and 'tiger cat', so the square moves it "
           "either way, down by at most 0.14 over the eye and up to 0.67 at the photo's edges.",
           "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
           "https://arxiv.org/abs/1311.2901",
           ["occlusion", "--image", "chelsea.png", "coffee.png"],
           ["--size", "64", "--stride", "32"],
           needs=(SQ,), crop=(.5, 1, 0, 1)),
    Figure("saliency_squeezenet.png", "saliency", "Saliency maps",
           "|d score / d pixel|, the maximum over colour channels, of each photo's own label "
           "(the astronaut, whom no ImageNet class names, gets the net's top guess), on whole "
           "photos (short side 300), averaged over the 16 shifts of the photo by 0-3 px: one "
           "gradient carries a 4-px grid from the strides of conv1 and its pool, which belongs "
           "to the net, not the photo. Third column: the map averaged over 48 noisy copies "
           "(SmoothGrad). Fourth: the seeds, that map blurred and multiplied by Grad-CAM's "
           "coarse map of the class (fire9), its top 20 % foreground (green), bottom 20 % "
           "background (red). GrabCut grows them; each cut's IoU is against an object mask "
           "drawn by hand (images/masks). The cup with saucer and spoon, the cat's head and "
           "Grace Hopper in her uniform are cut at IoU 0.84-0.88. It fails where no class names "
           "the object (the astronaut: the map peaks on her neck ring, and most of the orange "
           "suit is lost, the shuttle and helmet kept) and where the object is thin: the averaged "
           "map of 'missile' lies on the rocket, but the blurred seeds are wider than it and "
           "hold the sky beside it, which the cut keeps. There the seeds fail, not GrabCut: "
           "seeded from the hand masks, it cuts the astronaut at IoU 0.96 and the rocket at "
           "0.84. The map of the photo itself (second column) shows the cup and saucer but is "
           "speckle on the cat and the rocket: averaging over noisy copies is what finds them.",
           SIMONYAN[0], SIMONYAN[1],
           ["saliency", "--image", "coffee.png", "chelsea.png", "grace_hopper.jpg",
            "astronaut.png", "rocket.jpg", "--target", "espresso", "Egyptian cat",
            "military uniform", "predicted", "657", "--size", "300"],
           ["--size", "160"], needs=(SQ,),
           crop=(0, 1 / 5, 0, 1)),
    Figure("guided_backprop_squeezenet.png", "guided_backprop",
           "Guided backprop of an intermediate neuron",
           "The gradient of one fire6 neuron (channel 330) with respect to the image, through "
           "ReLUs with the plain backprop, deconvnet and guided rules, shown enlarged over the "
           "neuron's receptive field (framed in white on the photo), each averaged over the 16 "
           "moves of the photo by 0-3 px, which remove the colour speckle that conv1's and its "
           "pool's strides lay on one gradient (--grid 1 draws that). Plain backprop is speckle; "
           "deconvnet and guided both draw the outlines of what the neuron answers to, round "
           "things: the cat's eye, the astronaut's mission patch. At this middle layer the two "
           "differ little, guided (which also drops what the forward pass switched off) a little "
           "cleaner; Springenberg et al. find the deconvnet's pictures fail at higher layers.",
           "Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net",
           "https://arxiv.org/abs/1412.6806",
           ["guided_backprop", "--layer", "fire6", "--channel", "330",
            "--image", "chelsea.png", "astronaut.png"],
           needs=(SQ,), crop=(0, .5, 0, 1)),
    Figure("attribution_squeezenet.png", "attribution",
           "Grad-CAM, SmoothGrad, integrated gradients",
           "Three later answers to 'which pixels mattered': class activation maps from fire9's "
           "gradients (and guided backprop masked by them); SmoothGrad, gradients averaged over "
           "32 noisy copies, each shifted by 0-3 px in turn so that the 4-px grid of conv1's and "
           "its pool's strides averages out; and gradients integrated from a black image, whose "
           "sum the line over each row checks against the score's difference (completeness). "
           "Integrated gradients keep the grid: a shifted image would change the score they must "
           "add up to. The rocket's class is 'missile' (657), as in the saliency figure, not the "
           "net's top guess 'drilling platform': its Grad-CAM map lies on the tops of the towers "
           "(the left one brightest) and the rocket's nose, its SmoothGrad on the rocket. The "
           "cup's is the net's top class, espresso.",
           "Selvaraju et al. 2017 (Grad-CAM); Smilkov et al. 2017; Sundararajan et al. 2017",
           "https://arxiv.org/abs/1610.02391",
           ["attribution", "--image", "rocket.jpg", "coffee.png", "--target", "657", "predicted"],
           ["--steps", "8", "--samples", "4"],
           needs=(SQ,), crop=(0, .5, 0, .6)),
    Figure("class_visualization_squeezenet.png", "class_visualization",
           "Class visualisation by gradient ascent",
           "Images that maximise a class score, the same four classes, the regulariser growing "
           "down the rows: L2 alone (Simonyan et al., 100 steps) from CS231n's noise and, second "
           "row, the same L2 from the lecture's zero image (zero in the normalised input: the mean"
           " image), where flamingo never moves: its score there is 0 behind SqueezeNet's last "
           "ReLU, and so is its gradient; CS231n's recipe (L2, jitter, blur every 10 steps, "
           "clamping; 100 steps); Yosinski et al.'s first set (blur every 4 steps, pixels below "
           "the median norm zeroed; 500 steps). The pixel rows keep high-frequency colour noise, "
           "which the gradient favours. The last row changes the coordinates instead of the "
           "penalty (Olah et al. 2017): Adam on the amplitudes of waves weighted 1/frequency, in "
           "decorrelated colours, the image rolled at random each step (256 steps): whole "
           "flamingos, geese and tarantulas appear.",
           "Simonyan et al. 2014; Yosinski et al. 2015; Olah, Mordvintsev & Schubert 2017, "
           "Feature Visualization",
           "https://distill.pub/2017/feature-visualization/",
           ["class_visualization", "--model", "squeezenet",
            "--regularizer", "l2", "l2", "cs231n", "yosinski1", "fourier",
            "--init", "randn", "zeros", "randn", "randn", "randn"],
           ["--steps", "10"], needs=(SQ,), crop=(.8, 1, 0, .5)),
    Figure("class_visualization_cifar10.png", "class_visualization",
           "Class visualisation (CIFAR-10 net)",
           "CS231n's gradient ascent (L2 penalty, jitter, blur, clamp) for all ten CIFAR-10 "
           "classes of the shipped net.",
           SIMONYAN[0], SIMONYAN[1],
           ["class_visualization", "--model", "cifar10"], ["--steps", "10"],
           crop=(0, 1, 0, .4)),
    Figure("neuron_visualization_squeezenet.png", "class_visualization", "Neuron visualisation",
           "Gradient ascent on the mean of one fire6 channel instead of a class score, each "
           "pattern tiled over the whole image because the channel's mean rewards every "
           "position: channel 330 (the neuron of the guided-backprop figure) and three chosen by "
           "looking. Top: CS231n's regularisers on the pixels, rainbow noise over each pattern; "
           "bottom: the same channels drawn through Olah et al.'s Fourier parameterisation in "
           "decorrelated colours (as in the class visualisation figure): 330 draws eyes in "
           "crescent-shaped lids, 57 dark ovals on orange, 201 vertical ridges, 300 a diagonal "
           "lattice with eye-like spots. (Not shown: a channel that never fires on the near-grey "
           "start, 100 for one, gets no gradient from the Fourier start and stays blank.)",
           "Yosinski et al. 2015, Understanding Neural Networks Through Deep Visualization; "
           "Olah, Mordvintsev & Schubert 2017, Feature Visualization",
           "https://arxiv.org/abs/1506.06579",
           ["class_visualization", "--model", "squeezenet", "--layer", "fire6",
            "--channels", "330", "57", "201", "300", "--regularizer", "cs231n", "fourier"],
           ["--steps", "10"], needs=(SQ,), crop=(.5, 1, 0, .5)),
    Figure("multifaceted_cifar10.png", "multifaceted", "Multifaceted visualisation",
           "One class, several faces: the 5000 training 'horses' clustered by k-means on the "
           "net's relu6 codes (after PCA), and one class visualisation per cluster, started from "
           "the mean of the 2 images nearest the cluster's centre (each row shows them, their "
           "mean and the facet) and drawn in decorrelated colours, penalised for leaving that "
           "start. Each of the six facets (top) becomes the net's top class and keeps its "
           "cluster's colours and ground: a dark horse side-on on pale ground, a brown one facing"
           " the other way on sand, a horse with a rider on green (cluster 5), a dark horse on "
           "grass. Clusters 3 and 4 are head-and-neck close-ups, but their facets are not: the "
           "ascent paints a whole horse, legs and a rider over the close-up, the one horse this "
           "small net draws; a rider's dark shape sits on most of the six. The title gives how "
           "far apart the facets lie.",
           "Nguyen, Yosinski & Clune 2016, Multifaceted Feature Visualization",
           "https://arxiv.org/abs/1602.03616",
           ["multifaceted", "--model", "cifar10", "--target", "horse"],
           ["--steps", "10", "--k", "2"],
           needs=(DATA,), thumbnail=False),
    Figure("fooling_squeezenet.png", "fooling", "Fooling images",
           "A change of at most 45 of 255 in any pixel and 4 on average (RMS; the title's L2 "
           "over the 224x224x3 values), magnified on the right, turns the cat into a 'stingray' "
           "for the network: side by side at this size the two cats look nearly the same; "
           "enlarged, the fooled one is grainier, with faint yellow specks.",
           "Szegedy et al. 2014, Intriguing properties of neural networks",
           "https://arxiv.org/abs/1312.6199",
           ["fooling", "--model", "squeezenet", "--image", "chelsea.png", "--target", "stingray"],
           needs=(SQ,)),
    Figure("deepdream_squeezenet.png", "deepdream", "DeepDream",
           "Gradient ascent on the whole rocket photo (320 px high), over four octaves, "
           "amplifying what one layer already sees, layer by layer: relu1 turns up colours and "
           "edges, fire3 draws strokes, fire5 swirls, fire7 eyes, fire9 (30 steps an octave) "
           "birds' heads, eyes and feathers. Each step follows the gradient blurred by 1 px, "
           "so that the dream draws shapes rather than pixel-sized specks.",
           "Mordvintsev, Olah & Tyka 2015, Inceptionism: Going Deeper into Neural Networks",
           "https://research.google/blog/inceptionism-going-deeper-into-neural-networks/",
           ["deepdream", "--model", "squeezenet", "--image", "rocket.jpg", "--size", "320",
            "--layer", "relu1", "fire3", "fire5", "fire7", "fire9",
            "--steps", "10", "10", "10", "20", "30"],
           ["--size", "128", "--layer", "fire3", "fire9", "--octaves", "2", "--steps", "3"],
           needs=(SQ,), crop=(0.66, 1, 0, 1)),
    Figure("feature_inversion_squeezenet.png", "feature_inversion", "Feature inversion",
           "Images whose features at one layer match the photo's, with a total-variation "
           "regulariser: deeper layers keep the layout and lose the detail.",
           "Mahendran & Vedaldi 2015, Understanding Deep Image Representations by Inverting Them",
           "https://arxiv.org/abs/1412.0035",
           ["feature_inversion", "--model", "squeezenet", "--image", "astronaut.png"],
           ["--steps", "10"],
           needs=(SQ,), crop=(0, 1, .43, 1)),
    Figure("texture_synthesis.png", "texture_synthesis", "Gram-matrix texture synthesis",
           "Noise around the sample's mean colour optimised to match the Gram matrices of more "
           "and more layers of a 160-px sample (the centre of each texture shrunk to 320 px, so "
           "that edges and stones stay wider than conv1's stride): the texture's statistics, not "
           "its layout, so the last image, with every layer up to fire5, can be larger (240 px) "
           "than the sample. Colours and grain come first (relu1 already breaks bricks into edge "
           "fragments); fire2 adds the edges of bricks as ridges (not their staggered courses: no"
           " layer's Gram records where one brick lies against the next), stones with dark gaps "
           "on gravel and curved strokes on Starry Night. At this sample size fire3 and fire5 "
           "change them little: on Starry Night fire5 draws somewhat larger curving bands, on "
           "bricks it smears. Deeper layers are left out: fire7's Gram, from the sample's 9x9 "
           "positions, turned grass into a fine speckle. Each caption gives the image's time.",
           GATYS_TEXTURE[0], GATYS_TEXTURE[1],
           ["texture_synthesis", "--texture", "textures/brick.png", "textures/gravel.png",
            "styles/starry_night.jpg", "--zoom", "2"],
           ["--texture", "textures/brick.png", "--size", "64", "--steps", "5"], needs=(SQ,),
           crop=(.69, 1, .46, 1)),
    Figure("texture_nn.png", "texture_synthesis", "Nearest-neighbour texture synthesis",
           "Before Gram matrices: textures grown pixel by pixel from a 64 px sample to 192 px, "
           "nine times its area, every new pixel copied from a sample window that matches its "
           "filled neighbours (Gaussian-weighted; 15x15 for the bricks, 11x11 for the rest: "
           "about each texture's largest feature). Under each sample, the output cut into "
           "pieces, one colour each, each piece copied verbatim from one place of the sample: "
           "around the seed the output is an exact copy of the sample until the window meets "
           "the sample's edge (the largest piece, 5-7% of the output); beyond it, a mosaic of "
           "thousands of pieces, most of them single pixels. The samples are squares of brick, "
           "grass and Starry Night's sky; the fourth is the painting's centre square, a failure "
           "kept on purpose, the growing \"garbage\" the paper describes: the cypress's dark "
           "strokes match only themselves, and from a fifth of the sample (pixels darker than "
           "50 of 255) they grow to half the output. Each caption gives its time.",
           "Efros & Leung 1999, Texture Synthesis by Non-parametric Sampling",
           "https://people.eecs.berkeley.edu/~efros/research/NPS/efros-iccv99.pdf",
           ["texture_nn", "--texture", "textures/brick.png", "textures/grass.png",
            "styles/starry_night.jpg", "styles/starry_night.jpg",
            "--crop", "0,200,300", "128,128,256", "300,0,440", "centre",
            "--window", "15", "11", "11", "11"],
           ["--texture", "textures/brick.png", "--crop", "centre", "--window", "11", "--size",
            "24"], needs=(), crop=(.5, 1, 0, .5)),
    Figure("style_transfer.png", "style_transfer", "Neural style transfer",
           "The content of a photo (fire2 features) with the style (Gram matrices of four "
           "layers) of three paintings, each above its column: CS231n's three parameter sets, "
           "with 50 times its total-variation weight, without which Adam's large steps leave "
           "per-pixel rainbow speckle (PyTorch's autograd draws the same: bench/loops.py). The "
           "heavy smoothing also softens the strokes: the results are paler than the paintings, "
           "and Composition VII loses its black lines.",
           GATYS_STYLE[0], GATYS_STYLE[1],
           ["style_transfer", "--content", "chelsea.png", "coffee.png"],
           ["--content", "chelsea.png", "--style", "starry_night", "--steps", "5"], needs=(SQ,),
           crop=(.3, .65, 0, .75)),
    Figure("fast_style.png", "fast_style", "Fast style transfer",
           "Photos the network never saw in training, styled by one forward pass of a transform "
           "network that tinycnn trained for Starry Night (make train_fast_style), beside 200 "
           "L-BFGS steps of optimisation-based style transfer with the same loss: about 100 times"
           " faster, with a total loss (content + style + TV, in each label) 40-75% higher. The "
           "network's outputs carry a regular ripple where L-BFGS draws swirls in the sky and "
           "finer strokes elsewhere; the top row enlarges three times a patch of the rocket's sky"
           " (the plainest window a quarter of the photo's width and height, with the tip of a "
           "mast). Split by term (make fast_style prints it), the gap lies in the deep layers of "
           "the SqueezeNet loss network: on the rocket the network's style term for fire5, the "
           "deepest of the four style layers, is 11 times L-BFGS's and fire4's 3 times, while its"
           " term for relu1, the first, is lower: it matches the painting's fine statistics, not "
           "its larger ones. Longer training, more TV and Johnson et al.'s width of 32 did not "
           "remove the ripple (weights/README.md).",
           "Johnson, Alahi & Fei-Fei 2016, Perceptual Losses for Real-Time Style Transfer and "
           "Super-Resolution",
           "https://arxiv.org/abs/1603.08155",
           ["fast_style"], ["--content", "chelsea.png", "--steps", "3"], needs=(SQ,),
           crop=(.23, .48, 0, 1)),
    Figure("style_mix.png", "style_controls", "Blending styles",
           "One photo in two styles at once: the Gram targets of Starry Night and The Scream "
           "mixed with the weights shown (the ends are each style alone).",
           GATYS_STYLE[0], GATYS_STYLE[1],
           ["style_transfer", "--content", "chelsea.png", "--style", "starry_night", "the_scream",
            "--mix", "1,0", "0.67,0.33", "0.33,0.67", "0,1"],
           ["--mix", "0.5,0.5", "--steps", "5"], needs=(SQ,), crop=(.45, 1, 0, 1)),
    Figure("style_colour.png", "style_controls", "Keeping the photo's colours",
           "The Scream's brush strokes without its colours: plain transfer ('none'); "
           "luminance-only transfer (the photo's chroma put back); the painting recoloured "
           "first to the photo's colour mean and covariance, a linear map that Gatys et al. "
           "call colour histogram matching ('histogram'), which keeps the cup's reds but not "
           "all of the table's browns: the painting's green strokes stay green.",
           GATYS_CONTROL[0], GATYS_CONTROL[1],
           ["style_transfer", "--content", "coffee.png", "--style", "the_scream",
            "--colour", "none", "luminance", "histogram"],
           ["--colour", "luminance", "--steps", "5"], needs=(SQ,), crop=(.45, 1, 0, 1)),
    Figure("style_tradeoff.png", "style_controls", "Content against style",
           "Composition VII with the content weight scaled from 0.1 to 10 times CS231n's: at 0.1 "
           "the painting's texture alone (pastel zigzags in its colours, without its black lines:"
           " the smoothing of the style transfer figure), the cat gone; at 0.3 its eyes and nose "
           "show through the zigzags; at 1 both; at 3 the cat with a few strokes of paint in its "
           "fur (enlarge to see them); at 10 the photo with a little paint.",
           GATYS_STYLE[0], GATYS_STYLE[1],
           ["style_transfer", "--content", "chelsea.png", "--style", "composition_vii",
            "--content-scale", "0.1", "0.3", "1", "3", "10"],
           ["--content-scale", "1", "--steps", "5"], needs=(SQ,),
           crop=(.45, 1, 0, 1)),
]


def missing_inputs(needs):
    """Why a figure cannot be drawn here ('' when it can)."""
    from tinycnn.io.data import DataError, find_cifar10
    from tinycnn.io.weights import find_weights
    for need in needs:
        try:
            if need == SQ:
                find_weights("squeezenet1_1.npz")
            elif need == DATA:
                find_cifar10()
        except (FileNotFoundError, DataError) as e:
            how = re.search(r"[Rr]un (`make \w+`[^.;]*)", str(e))       # what to do about it
            first = str(e).split(";")[0].split(". Run")[0]
            return first + (f"; run {how.group(1)}" if how else "")
    return ""


def default_jobs():
    """Figures drawn at once: one per core (each command runs its products on one BLAS
    thread, tinycnn/engine/threads.py; per TINYCNN_BLAS_THREADS cores when that asks for more), at
    most MAX_JOBS, which bounds the memory of the photos' models side by side; one on a GPU
    (TINYCNN_BACKEND=cupy), which the commands would otherwise share."""
    if os.environ.get("TINYCNN_BACKEND", "").strip().lower() == "cupy":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        cores = os.cpu_count() or 1
    from tinycnn.engine.threads import threads_for_commands
    try:
        threads = threads_for_commands()
    except ValueError:              # a bad TINYCNN_BLAS_THREADS: each command says so itself
        threads = 1
    return max(1, min(MAX_JOBS, cores // threads))


def draw(figures, out_dir, *, fast=False, extra=(), required=False, jobs=1, log=print):
    """Run each figure's command, ``jobs`` at a time; {file: (status, seconds, message)} in the
    figures' order, status drawn/skipped/failed. A figure whose inputs are missing is skipped,
    or failed if ``required`` (asked for by name)."""
    results = {}
    lock = threading.Lock()               # one log line at a time; the set of running commands
    running, interrupted = set(), threading.Event()
    # a command's own progress goes to a terminal, not to logs, and not when several commands
    # would interleave theirs
    live = jobs == 1 and sys.stdout.isatty()

    def report(line):
        with lock:
            log(line, flush=True)

    def one(i, fig):
        if interrupted.is_set():
            return
        head = f"[{i:2d}/{len(figures)}] {fig.file:40s}"
        why = missing_inputs(fig.needs)
        if why:
            results[fig.file] = ("failed" if required else "skipped", 0.0, why)
            report(f"{head} {'FAILED' if required else 'skipped'}: {why}")
            return
        report(f"{head} make {fig.target} ...")          # a line when it starts, logs included
        start = time.perf_counter()
        with subprocess.Popen([sys.executable, "-m", *fig.argv(out_dir, fast=fast, extra=extra)],
                              stderr=subprocess.PIPE, text=True,
                              stdout=None if live else subprocess.DEVNULL) as done:
            with lock:
                running.add(done)
                if interrupted.is_set():        # started as Ctrl-C came: stopped like the others
                    done.terminate()
            errors = done.communicate()[1]
            with lock:
                running.discard(done)
        seconds = time.perf_counter() - start
        if interrupted.is_set():
            return
        if done.returncode == 0:
            results[fig.file] = ("drawn", seconds, "")
            report(f"{head} drawn in {seconds:.1f} s")
        else:
            lines = errors.strip().splitlines() or [f"exit status {done.returncode}"]
            results[fig.file] = ("failed", seconds, lines[-1])
            report(f"{head} FAILED after {seconds:.1f} s: {lines[-1]}")

    pool = ThreadPoolExecutor(max_workers=jobs)              # threads that wait for the commands
    try:
        for future in [pool.submit(one, i, fig) for i, fig in enumerate(figures, 1)]:
            future.result()
    except BaseException:      # Ctrl-C: no figure starts any more, and the ones being drawn stop
        interrupted.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            for command in running:
                command.terminate()
        raise
    pool.shutdown()
    return {fig.file: results[fig.file] for fig in figures}


COLUMN = 1100          # px: the width of the gallery page's text (a figure may be wider)
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tinycnn: visualizing and understanding CNNs</title>
<link rel="icon" href="data:,">
<style>
/* narrow margins leave wide pictures room */
body {{ font-family: system-ui, sans-serif; margin: 2em .5em; color: #222; }}
/* text keeps to a column {column} px wide; a figure's picture may be wider (.picture) */
body > :not(figure), figure > :not(.picture) {{ max-width: {column}px; margin-left: auto;
                                                margin-right: auto; }}
figure {{ margin: 2.5em 0; }}
figure > h2 {{ border-top: 1px solid #ddd; padding-top: .8em; }}
/* Every picture is shown at its own pixel size (twice that when small), never shrunk, so the
   text drawn in it stays as legible as in the PNG: in the column when it fits; wider, centred on
   the page, out to the window's edges; wider still, it scrolls sideways. --width is the picture's
   width with its border; margin-left is the column's left edge, or less for a wider picture. */
.picture {{ width: fit-content; max-width: 100%; box-sizing: border-box; overflow-x: auto;
            border: 1px solid #eee;
            margin-left: clamp(0px, (100% - var(--width)) / 2, (100% - {column}px) / 2); }}
.picture img {{ display: block; }}
.picture img.enlarged {{ image-rendering: pixelated; }}   /* crisp when doubled */
figcaption {{ margin-top: .6em; line-height: 1.45; }}
code {{ background: #f4f4f4; padding: 1px 4px; font-size: 90%; }}
/* a command wraps between its arguments, never inside one */
code.command span {{ white-space: nowrap; }}
.note {{ color: #a33; }}
nav a {{ margin-right: .8em; white-space: nowrap; }}
</style>
</head>
<body>
<h1>tinycnn: visualizing and understanding CNNs</h1>
<p>Every figure below was drawn by tinycnn's own NumPy code (no autodiff library), with the
SqueezeNet 1.1 ImageNet model or the CIFAR-10 net that tinycnn trained itself.
{mode} Last run {when}: {count} figure(s), {total:.0f} s of drawing. Redraw all with
<code>make figures</code>, one with its <code>make</code> target; the <code>python -m</code>
commands below run in the project's environment (<code>source .venv/bin/activate</code> first,
or type <code>.venv/bin/python</code>).</p>
<nav>{nav}</nav>
{body}
</body>
</html>
"""


def command_html(words):
    """A command line as <code>, each argument (quoted as a shell needs) an unbreakable span:
    a long command wraps between its arguments, and copied, it reads as typed."""
    spans = " ".join(f"<span>{html.escape(shlex.quote(str(w)))}</span>" for w in words)
    return f'<code class="command">{spans}</code>'


def figure_html(fig, size, note=""):
    """One figure: its title, a note if any (e.g. that the last run failed), its picture at its
    own pixel size (twice that when small), and the caption with the commands that draw it."""
    width, height = size
    enlarged = width <= 420         # small figures (filters, a single image) shown twice as large
    if enlarged:
        width, height = 2 * width, 2 * height
    wide = (f"Shown at full size ({width} px wide): where the window is narrower, scroll it "
            "sideways. " if width > COLUMN else "")
    note = f'<p class="note">{html.escape(note)}</p>\n' if note else ""
    return f"""<figure id="{html.escape(Path(fig.file).stem)}">
<h2>{html.escape(fig.title)}</h2>
{note}<div class="picture" style="--width: {width + 2}px"><a href="{html.escape(fig.file)}"
 title="the PNG alone"><img
 src="{html.escape(fig.file)}" width="{width}" height="{height}" alt="{html.escape(fig.title)}"
 loading="eager"{' class="enlarged"' if enlarged else ''}></a></div>
<figcaption>{wide}{html.escape(fig.shows)}<br>
Paper: <a href="{html.escape(fig.url)}">{html.escape(fig.paper)}</a><br>
Draw it: {command_html(["make", fig.target])}, or {command_html(["python", "-m", *fig.argv()])}
</figcaption>
</figure>"""


def picture_size(path):
    """(width, height) of the PNG at path, or None where there is none (or it cannot be read)."""
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def earlier_picture_note(status, message, path, started=None):
    """What a figure that this run failed or skipped says above its picture from an earlier run
    (or, where the command wrote it after ``started``, a time.time(), and then failed, from this
    one)."""
    written = Path(path).stat().st_mtime
    drawn = time.strftime("%Y-%m-%d %H:%M", time.localtime(written))
    message = message.rstrip(".")
    if status == "failed" and started is not None and written >= started:
        return f"The last run failed after writing this picture: {message}."
    if status == "failed":
        return (f"The last run failed: {message}. The picture is from an earlier run, drawn "
                f"{drawn}.")
    return f"Skipped this run: {message}; the picture is from an earlier run, drawn {drawn}."


def write_page(figures, out_dir, results, *, fast=False, started=None):
    """figures/index.html: every figure that has a PNG, with its caption (and a note where this
    run failed or skipped it, so that the PNG is from an earlier run); figures without one
    listed."""
    out_dir = Path(out_dir)
    shown, blocks, nav = [], [], []
    for f in figures:
        size = picture_size(out_dir / f.file)
        if size is None:
            continue
        shown.append(f)
        status, _, message = results.get(f.file, ("not run", 0, ""))   # not run: --only others
        note = ""
        if status in ("failed", "skipped"):
            note = earlier_picture_note(status, message, out_dir / f.file, started)
        blocks.append(figure_html(f, size, note))
        title = html.escape(f.title)
        mark = f' class="note">{title} ({status})' if note else f">{title}"
        nav.append(f'<a href="#{html.escape(Path(f.file).stem)}"{mark}</a>')
    left = [f for f in figures if f not in shown]
    if left:
        why = {f.file: results.get(f.file, ("", 0, "not run"))[2] or "no picture" for f in left}
        items = "".join(f"<li><code>{html.escape(f.file)}</code> ({html.escape(f.title)}): "
                        f"{html.escape(why[f.file])}</li>" for f in left)
        blocks.append(f'<section class="note"><h2>Not drawn</h2><ul>{items}</ul></section>')
    mode = ("<strong>Fast mode</strong> (<code>make figures FAST=1</code>): reduced sizes and "
            "iterations, so these figures check the code rather than show the techniques at "
            "their best." if fast else "")
    page = PAGE.format(mode=mode, when=time.strftime("%Y-%m-%d %H:%M"), nav="\n".join(nav),
                       body="\n".join(blocks), count=len(results),
                       total=sum(r[1] for r in results.values()), column=COLUMN)
    path = out_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def thumbnails(figures, src_dir, out_dir, height=140, max_width=480):
    """Small PNGs (a part of each figure, see Figure.crop) of the figures whose inputs
    may be published, for the README."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in figures:
        src = Path(src_dir) / fig.file
        if not fig.thumbnail or not src.is_file():
            continue
        with Image.open(src) as im:
            top, bottom, left, right = fig.crop
            im = im.convert("RGB").crop((round(left * im.width), round(top * im.height),
                                         round(right * im.width), round(bottom * im.height)))
            scale = min(height / im.height, max_width / im.width)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            path = out_dir / f"thumb_{fig.file}"
            im.quantize(colors=128, dither=Image.Dither.NONE).save(path, optimize=True)
        written.append(path)
        if fig.file in DEMO:                 # the README's demo section shows these at full size
            shutil.copyfile(src, out_dir / fig.file)
            written.append(out_dir / fig.file)
    return written


def select(names):
    """The figures named by file, file stem or make target; ValueError naming unknown ones."""
    if not names:
        return list(FIGURES)
    chosen = [f for f in FIGURES
              if f.target in names or f.file in names or Path(f.file).stem in names]
    known = ({f.target for f in FIGURES} | {Path(f.file).stem for f in FIGURES}
             | {f.file for f in FIGURES})
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown figure {', '.join(unknown)}; choose from the make targets "
                         f"{', '.join(sorted({f.target for f in FIGURES}))}")
    return chosen


def split_options(text):
    """--args as a list, split like a shell does; ValueError for an unclosed quote."""
    try:
        return shlex.split(text or "")
    except ValueError as e:
        raise ValueError(f"argument --args: {text!r}: {e}") from None


def _parser():
    from vis import cli
    p = cli.ArgumentParser(description="Draw every figure of the lecture and the gallery page "
                           "figures/index.html.", module="vis.gallery")
    p.add_argument("--out", default="figures", help="output folder (default: %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="reduced sizes and iterations: checks the code in minutes")
    p.add_argument("--only", nargs="+", default=None,
                   help="make targets or figure names to draw (a figure whose inputs are missing "
                        "is then an error)")
    p.add_argument("--jobs", type=cli.count, default=default_jobs(),
                   help="figures drawn at once (default: one per core, at most %d: %%(default)s)"
                        % MAX_JOBS)
    p.add_argument("--args", default=None, metavar="OPTIONS",
                   help="options appended to every figure's command, e.g. --args='--seed 1'")
    instead = p.add_mutually_exclusive_group()
    instead.add_argument("--print", action="store_true",
                         help="print the commands instead of running them")
    instead.add_argument("--thumbnails", default=None, metavar="FOLDER",
                         help="instead of drawing, write README thumbnails of the figures in "
                              "--out to FOLDER")
    return p


def _write_thumbnails(figures, src_dir, out_dir):
    written = thumbnails(figures, src_dir, out_dir)
    if not written:
        raise FileNotFoundError(f"no figures in {src_dir}/ to make thumbnails of: run "
                                "`make figures` first")
    for path in written:
        print(f"wrote {path}")


def _draw_or_stop(figures, out_dir, **options):
    """draw(), but Ctrl-C ends the command in one line, exit status 130 as a shell's."""
    try:
        return draw(figures, out_dir, **options)
    except KeyboardInterrupt:
        print("interrupted: the figures being drawn were stopped, the others not started",
              file=sys.stderr)
        sys.exit(130)


def _summary(results, seconds, jobs, page):
    """The last line: how many figures were drawn, skipped and failed, and in what time."""
    counts = {s: sum(r[0] == s for r in results.values()) for s in ("drawn", "skipped", "failed")}
    work = sum(r[1] for r in results.values())
    at_once = f" ({work:.0f} s of drawing, {jobs} at a time)" if jobs > 1 else ""
    return (f"{counts['drawn']} drawn, {counts['skipped']} skipped, {counts['failed']} failed in "
            f"{seconds:.0f} s{at_once}; open {page}")


def main(argv=None):
    from vis import cli
    args = cli.parse_args(_parser(), argv, __doc__, out_is_folder=True)
    figures = select(args.only)
    extra = split_options(args.args)
    if args.print:
        for fig in figures:
            print(fig.command(args.out, fast=args.fast, extra=extra))
        return
    if args.thumbnails:
        _write_thumbnails(figures, args.out, args.thumbnails)
        return
    cli.check_writable(args.out)
    print(f"drawing {len(figures)} figure{'s' if len(figures) != 1 else ''} into {args.out}/"
          + (" (fast mode)" if args.fast else ""))
    start, started = time.perf_counter(), time.time()
    jobs = min(args.jobs, len(figures))
    results = _draw_or_stop(figures, args.out, fast=args.fast, extra=extra,
                            required=args.only is not None, jobs=jobs)
    page = write_page(FIGURES, args.out, results, fast=args.fast, started=started)
    print(_summary(results, time.perf_counter() - start, jobs, page))
    if any(status == "failed" for status, _, _ in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    from vis import cli
    cli.run(main)
