"""alseg.models: reference models of alseg.

:class:`~alseg.models.unet.UNet` (short name ``unet``) is MONAI's U-Net in 2D or 3D as a
:class:`~alseg.core.model.PytorchModel`, with sliding-window inference and bottleneck embeddings.
"""
