"""3D patch embedding: scans `[S, 1, D, H, W]` -> patch tokens `[S, d, h, w, C]`.

Three tokenisers share one interface:

- linear (upstream HLIP): a `Conv3d` with kernel = stride = patch size (`proj`).
- max-pooled stem: a small convolutional stem (`stem`), max-pooled inside each patch, then a 1x1x1 projection
  (`proj`). A linear patch projection averages a small lesion away inside its patch, and small from-scratch
  models then learn nothing (docs/demo-model.md); the max-pool keeps the strongest local response of every
  patch. With `stem_downsample`, every stem convolution but the last is followed by a 2x2x2 max-pool, so later
  convolutions see a wider context (a bright lesion inside the brain vs the bright scalp at its edge) at a
  fraction of the cost of full resolution.
- strided stem (`stem_pool="stride"`): strided convolution + BatchNorm + ReLU blocks down to the patch grid, then
  a linear patchify of what is left. The hybrid tokeniser of `hlip-demo`: it brings the tower to a small CNN's
  sample efficiency on the demo corpus (docs/demo-model.md, session 6).
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchEmbed3D(nn.Module):
    """Patch tokens of a packed batch of scans.

    Args:
        patch_size: `(pd, ph, pw)`.
        dim: Token width C.
        in_chans: Input channels (1 for CT/MRI).
        stem_channels: Channels of the 3x3x3 stem convolutions; empty for the linear embedding.
        stem_downsample: 2x2x2 max-pool after every stem convolution but the last.
        stem_pool: "max" (max-pool inside each patch) or "stride" (strided 3x3x3 convolution + BatchNorm + ReLU
            blocks down to the patch grid, as in "Early convolutions help transformers see better" (Xiao et al.,
            2021); what is left becomes a linear patchify). BatchNorm uses its running statistics in `eval()`, so
            evaluation and serving stay independent of the other scans in a batch.
        norm: LayerNorm on the tokens (timm's `norm_layer`): content at unit scale next to the positional
            embedding, whatever the intensity range of the scans.
    """

    def __init__(
        self,
        patch_size: tuple[int, int, int],
        dim: int,
        in_chans: int = 1,
        stem_channels: tuple[int, ...] = (),
        stem_downsample: bool = False,
        norm: bool = False,
        stem_pool: str = "max",
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.stem: nn.Sequential | None = None
        if stem_channels and stem_pool == "stride":
            convs: list[nn.Module] = []
            rest = patch_size
            for c_in, c_out in zip((in_chans, *stem_channels[:-1]), stem_channels, strict=True):
                stride = _halving(rest)
                rest = (rest[0] // stride[0], rest[1] // stride[1], rest[2] // stride[2])
                convs += [
                    nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
                    nn.BatchNorm3d(c_out),
                    nn.ReLU(),
                ]
            self.stem = nn.Sequential(*convs)
            self.proj = nn.Conv3d(stem_channels[-1], dim, kernel_size=rest, stride=rest)
        elif stem_channels:
            factor = 2 ** (len(stem_channels) - 1) if stem_downsample else 1
            if any(p % factor for p in patch_size):
                raise ValueError(f"patch size {patch_size} is not divisible by the stem's downsampling {factor}")
            layers: list[nn.Module] = []
            for i, (c_in, c_out) in enumerate(zip((in_chans, *stem_channels[:-1]), stem_channels, strict=True)):
                layers += [nn.Conv3d(c_in, c_out, kernel_size=3, padding=1), nn.GELU()]
                if stem_downsample and i < len(stem_channels) - 1:
                    layers.append(nn.MaxPool3d(kernel_size=2, stride=2))
            pool = tuple(p // factor for p in patch_size)
            layers.append(nn.MaxPool3d(kernel_size=pool, stride=pool))
            self.stem = nn.Sequential(*layers)
            self.proj = nn.Conv3d(stem_channels[-1], dim, kernel_size=1)
        else:
            self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm: nn.Module = nn.LayerNorm(dim, eps=1e-6) if norm else nn.Identity()
        self.locked_layers = 0  # the stem's first layers that `lock_stem` froze

    def lock_stem(self, convolutions: int | None = None) -> None:
        """Freeze the stem's first `convolutions` convolutions (None: all) with the normalisation and activation
        after each (`pretrain.<stage>.freeze_stem`): no gradients, and always in eval mode, so their BatchNorm keeps
        the running statistics it ended training with and they are one fixed function of each scan. The rest of the
        stem and `proj` (the patchify) stay trainable. Not part of the weights: an exported model loads unlocked.

        Raises:
            ValueError: The embedding has no stem (linear patches), or fewer convolutions than asked.
        """
        if self.stem is None:
            raise ValueError("this patch embedding has no convolutional stem to lock (linear patches)")
        starts = [i for i, m in enumerate(self.stem) if isinstance(m, nn.Conv3d)]
        n = len(starts) if convolutions is None else convolutions
        if not 1 <= n <= len(starts):
            raise ValueError(f"cannot lock {n} of the stem's {len(starts)} convolutions")
        self.locked_layers = starts[n] if n < len(starts) else len(self.stem)
        for layer in list(self.stem)[: self.locked_layers]:
            layer.requires_grad_(False)
            layer.eval()

    def train(self, mode: bool = True) -> PatchEmbed3D:
        """Set training mode; a locked part of the stem stays in eval mode."""
        super().train(mode)
        if self.stem is not None:
            for layer in list(self.stem)[: self.locked_layers]:
                layer.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """`[S, 1, D, H, W] -> [S, d, h, w, C]`."""
        if any(s % p for s, p in zip(x.shape[2:], self.patch_size, strict=True)):
            raise ValueError(f"scan size {tuple(x.shape[2:])} is not a multiple of the patch size {self.patch_size}")
        if self.stem is not None:
            x = self.stem(x)  # [S, c, d, h, w]
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))  # [S, d, h, w, C]


def _halving(remaining: tuple[int, int, int]) -> tuple[int, int, int]:
    """Stride 2 on the axes whose remaining patch extent is still even, 1 elsewhere."""
    d, h, w = (2 if r % 2 == 0 and r > 1 else 1 for r in remaining)
    return d, h, w
