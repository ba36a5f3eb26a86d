"""The lesion GAN zoo: DCGAN, WGAN (clipping), WGAN-GP, AC-GAN and SN-GAN at 64 or 128 px.

``networks`` holds G and D (one DCGAN-style architecture parameterized by image size),
``losses`` one phased loss object per variant, ``diffaugment`` the differentiable augmentation,
``loop`` the one training loop, and ``zoo`` the registered :class:`Generator` classes that tie
them together. A new variant is a new loss class and a few lines in ``zoo``, never a new loop.
"""
