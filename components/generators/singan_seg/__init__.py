"""SinGAN-Seg: single-image GANs on RGB + mask, K models trained at once (see model.py)."""
