"""The readers: everything that enters tinycnn from outside (files, command lines, arrays),
checked at the door.

- ``images``: image files -> normalised arrays (and back), the ImageNet class names
- ``png``: a PNG's pixel stream checked for truncation before Pillow decodes it
- ``weights``: ``.npz`` and ``.pth`` weight files, and where they are found
- ``torch_checkpoint``: PyTorch checkpoints read without running their pickle
- ``archives``: zip records checked before they are read
- ``data``: CIFAR-10
- ``sample_images``: the optional photos (``make images``)
- ``arrays``: arrays handed to a network: a float dtype, the right device, finite values
- ``args``: command lines: one parser whose complaints are one ``error:`` line, the argument types
- ``checkpoint``: training checkpoints (parameters, optimiser state, random state, history)
"""
