"""The readers: everything that enters tinycnn from a file, checked at the door.

- ``images``: image files -> normalised arrays (and back), the ImageNet class names
- ``png``: a PNG's pixel stream checked for truncation before Pillow decodes it
- ``weights``: ``.npz`` and ``.pth`` weight files, and where they are found
- ``torch_checkpoint``: PyTorch checkpoints read without running their pickle
- ``archives``: zip records checked before they are read
- ``data``: CIFAR-10
- ``sample_images``: the optional photos (``make images``)
"""
