"""vis: one module per technique of "Visualizing and Understanding CNNs" (CS231n).

How the modules depend on each other (arrows: "imports"):

    technique (saliency, class_visualization, style_transfer, ...)
        |--> objectives   what to explain or maximise: select(), the objectives, the loss terms
        |--> _optimize    the driver for techniques that optimise an image
        |--> render       pictures: grids, colour maps, gradients as images, captions
        |--> cli          the command line: models, images, targets, MODEL_DEFAULTS
        |--> _memory      what a command's options cost in memory, refused before any work
        |--> grabcut      a building block, not a figure: GrabCut's segmentation (saliency)
        |                 and k-means (multifaceted)
        '--> tinycnn      the network: forward, backward with a ReLU rule, activations

    gallery --> cli       every figure's command and caption; runs the commands (make
                          figures) and writes the gallery page; imports no technique

The shared modules import tinycnn alone (gallery also cli), never a technique. Techniques
do not import each other (tests/test_vis_structure.py holds them to it), but where one
technique is built on another:

    multifaceted     --> class_visualization   a facet is a class visualisation, started
                                               from a cluster's mean image instead of noise
    fast_style       --> style_transfer        trained on style transfer's loss (its layers,
                                               presets and style images), and drawn beside
                                               its optimised result
    fast_style_train --> fast_style            the training command of fast_style's transform
                                               network: its layers, loss and recipe
"""
