"""vis: one module per technique of "Visualizing and Understanding CNNs" (CS231n).

How the modules depend on each other (arrows: "imports"):

    technique (saliency, class_visualization, style_transfer, ...)
        |--> objectives   what to explain or maximise: select(), the objectives, the loss terms
        |--> _optimize    the driver for techniques that optimise an image
        |--> render       pictures: grids, colour maps, gradients as images, captions
        |--> cli          the command line: models, images, targets, MODEL_DEFAULTS
        '--> tinycnn      the network: forward, backward with a ReLU rule, activations

Techniques do not import each other, with one exception: multifaceted calls
class_visualization (a facet is a class visualisation started from a cluster mean).
gallery lists every figure's command and draws them all (make figures).
"""
