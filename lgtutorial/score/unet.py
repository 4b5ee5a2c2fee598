"""The lightweight score network: a small, fully convolutional U-Net (Robertson et al. 2023, Section 3.2).

The network ``s_theta(x)`` has no noise-level input (no time embedding, no attention); the score at
noise level ``sigma`` is ``s_theta(x) / sigma`` (the scaling trick of Song & Ermon 2020). Every
hidden layer has the same width ``L_c`` ("lift" or latent channels); ``D`` strided 2x2 convolutions
go down to ``D + 1`` resolutions and 2x2 transposed convolutions come back up, and at each level a
two-conv skip branch is merged with the upsampled features by a 1x1 convolution.

Because everything is convolutional, a model trained on 40x40 patches runs on 256x256 fields; the
only constraint is that height and width be divisible by ``2**D``.

>>> from lgtutorial.score.settings import UNetSettings
>>> model = ScoreUNet(UNetSettings(channels=1, latent_channels=8, depth=1))
>>> model(torch.zeros(2, 1, 12, 12)).shape
torch.Size([2, 1, 12, 12])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lgtutorial.score.settings import UNetSettings

__all__ = ["ScoreUNet", "InstanceNormPlusPlus", "ConvBlock", "SkipBranch", "receptive_field"]

NORM_EPSILON = 1e-5


def receptive_field(settings: UNetSettings) -> int:
    """Side (px) of the input window that one output pixel's convolutions see, at the worst alignment.

    Exact interval arithmetic along every path: the encoder's ``1 + num_blocks`` 3x3 convolutions,
    at each level a skip branch of two 3x3 convolutions beside a 2x2 stride-2 step down (and a 2x2
    transposed step back up, which maps every output pixel to one input pixel), the bottom's skip
    branch, then the decoder's ``num_blocks`` 3x3 convolutions and the output convolution. The
    instance norms add global information (per-channel means over the whole field), not local
    detail, and are not counted. What a model can draw is bounded by it: a feature wider than this
    window cannot be drawn as a whole.

    >>> [receptive_field(UNetSettings(depth=d)) for d in (0, 1, 2, 3)]
    [13, 18, 28, 52]
    """
    depth, blocks = settings.depth, settings.num_blocks

    def level(k: int, pixel: int) -> tuple[int, int]:
        # the interval of level k's input (2**k px per pixel) that level k's output at `pixel` sees
        low, high = pixel - 2, pixel + 2  # the skip branch: two 3x3 convolutions
        if k < depth:
            below_low, below_high = level(k + 1, pixel // 2)
            low, high = min(low, 2 * below_low), max(high, 2 * below_high + 1)
        return low, high

    widest = 0
    for pixel in range(2**depth):  # every alignment with the coarsest grid
        seen = [level(0, p) for p in range(pixel - blocks - 1, pixel + blocks + 2)]  # decoder + output conv
        widest = max(widest, max(h for _, h in seen) - min(lo for lo, _ in seen) + 1)
    return widest + 2 * (1 + blocks)  # the encoder's convolutions


class InstanceNormPlusPlus(nn.Module):
    """Instance normalization that keeps the relative channel means (NCSN's "InstanceNorm++").

    Plain instance normalization removes every channel's spatial mean, and with it information
    about colour/phase balance. InstanceNorm++ (Song & Ermon 2019, Appendix A) adds back the
    channel means standardized across channels, weighted by ``alpha``:
    ``h = gamma * (instance_norm(x) + alpha * (mu - mean_c(mu)) / sqrt(var_c(mu) + eps)) + beta``,
    with ``mu`` the per-channel spatial means of ``x`` of shape ``(n, channels)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.alpha = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """``alpha, gamma ~ N(1, 0.02)``, ``beta = 0``."""
        with torch.no_grad():
            self.alpha.normal_(1.0, 0.02, generator=generator)
            self.gamma.normal_(1.0, 0.02, generator=generator)
            self.beta.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one pass for the statistics, one for the output: everything folds into x * scale + shift.
        # Under autocast x arrives in 16 bits: the statistics and the output are computed in (at
        # least) float32, as a bfloat16 mean has 8 significant bits, and the output goes back to x's type
        dtype = x.dtype
        x = x.to(torch.promote_types(dtype, torch.float32))
        variances, means = torch.var_mean(x, dim=(2, 3), unbiased=False)  # (n, channels)
        relative = (means - means.mean(dim=1, keepdim=True)) / (
            means.var(dim=1, keepdim=True) + NORM_EPSILON
        ).sqrt()
        scale = self.gamma * torch.rsqrt(variances + NORM_EPSILON)
        shift = self.gamma * self.alpha * relative + self.beta - scale * means
        return torch.addcmul(shift[..., None, None], x, scale[..., None, None]).to(dtype)


class ConvBlock(nn.Module):
    """Convolution -> InstanceNorm++ -> PReLU (one slope per channel).

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: 3 (zero padding 1, same size), 1 (1x1 merge) or 2 (stride-2 down/up-sampling).
        transposed: use a transposed convolution (upsampling by the stride).
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1,
                 transposed: bool = False):
        super().__init__()
        padding = kernel_size // 2 if stride == 1 else 0
        layer = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.conv = layer(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.norm = InstanceNormPlusPlus(out_channels)
        self.activation = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.norm(self.conv(x)))


class SkipBranch(nn.Module):
    """Two 3x3 conv blocks with dropout between them; the features one level carries across."""

    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.first = ConvBlock(channels, channels)
        self.dropout = nn.Dropout(dropout)
        self.second = ConvBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.dropout(self.first(x)))


class ScoreUNet(nn.Module):
    """Noise-unconditional score U-Net ("V-Net") of Robertson et al. 2023 (Section 3.2).

    Layout, with ``L_c = settings.latent_channels`` and ``D = settings.depth``:

    * encoder: conv block ``C -> L_c``, then ``num_blocks`` conv blocks ``L_c -> L_c``;
    * level ``k = 0..D-1``: ``skips[k]`` keeps a copy, ``downs[k]`` (2x2, stride 2) halves the size;
    * bottom: ``skips[D]``;
    * level ``k = D-1..0``: ``ups[k]`` (2x2 transposed, stride 2) doubles the size, the result is
      concatenated with the level's skip copy (upsampled features first) and ``merges[k]`` (1x1,
      ``2 L_c -> L_c``) combines them;
    * decoder: ``num_blocks`` conv blocks, then a plain 3x3 conv ``L_c -> C`` (no norm/activation).

    Args:
        settings: the architecture (:class:`~lgtutorial.score.settings.UNetSettings`).
        generator: optional ``torch.Generator`` (CPU) for reproducible initial weights.
    """

    def __init__(self, settings: UNetSettings | None = None, *, generator: torch.Generator | None = None):
        super().__init__()
        settings = settings if settings is not None else UNetSettings()
        if not isinstance(settings, UNetSettings):
            raise TypeError(f"settings must be a UNetSettings, got {type(settings).__name__}")
        for name in ("channels", "latent_channels", "num_blocks", "depth"):
            value, smallest = getattr(settings, name), (0 if name in ("num_blocks", "depth") else 1)
            if not isinstance(value, int) or value < smallest:
                raise ValueError(f"UNetSettings.{name} must be an integer >= {smallest}, got {value!r}")
        if not 0.0 <= settings.dropout < 1.0:
            raise ValueError(f"UNetSettings.dropout must be in [0, 1), got {settings.dropout}")
        self.settings = settings
        width = settings.latent_channels
        self.encoder = nn.ModuleList(
            [ConvBlock(settings.channels, width)] + [ConvBlock(width, width) for _ in range(settings.num_blocks)]
        )
        self.skips = nn.ModuleList([SkipBranch(width, settings.dropout) for _ in range(settings.depth + 1)])
        self.downs = nn.ModuleList([ConvBlock(width, width, kernel_size=2, stride=2) for _ in range(settings.depth)])
        self.ups = nn.ModuleList(
            [ConvBlock(width, width, kernel_size=2, stride=2, transposed=True) for _ in range(settings.depth)]
        )
        self.merges = nn.ModuleList([ConvBlock(2 * width, width, kernel_size=1) for _ in range(settings.depth)])
        self.decoder = nn.ModuleList([ConvBlock(width, width) for _ in range(settings.num_blocks)])
        self.output = nn.Conv2d(width, settings.channels, 3, padding=1)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialize as PyTorch does by default (Kaiming-uniform convs, PReLU slopes 0.25), seeded."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                    fan_in = module.weight[0].numel() if isinstance(module, nn.Conv2d) else (
                        module.weight.shape[1] * module.weight[0, 0].numel())
                    bound = 1.0 / math.sqrt(fan_in)
                    module.bias.uniform_(-bound, bound, generator=generator)
                elif isinstance(module, InstanceNormPlusPlus):
                    module.reset_parameters(generator)
                elif isinstance(module, nn.PReLU):
                    module.weight.fill_(0.25)

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def size_multiple(self) -> int:
        """Height and width of the input must be multiples of ``2**depth``."""
        return 2 ** self.settings.depth

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.settings.channels:
            raise ValueError(
                f"expected input of shape (n_samples, {self.settings.channels}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"height and width must be divisible by 2**depth = {self.size_multiple} "
                f"(depth {self.settings.depth}), got {height}x{width}; pad or crop the input"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw network output ``s_theta(x)`` of shape ``(n_samples, C, H, W)`` (score times sigma)."""
        self._check_input(x)
        for block in self.encoder:
            x = block(x)
        carried = []
        for skip, down in zip(self.skips, self.downs):
            carried.append(skip(x))
            x = down(x)
        x = self.skips[-1](x)
        for level in reversed(range(self.settings.depth)):
            x = self.merges[level](torch.cat([self.ups[level](x), carried[level]], dim=1))
        for block in self.decoder:
            x = block(x)
        return self.output(x)

    def score(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Score ``s_theta(x) / sigma`` at noise level ``sigma`` (a number, a 0-d tensor or ``(n,)``).

        Suits :func:`lgtutorial.sampling.integrators.annealed_langevin` as ``score_fn``.
        """
        output = self(x)
        sigma = torch.as_tensor(sigma, dtype=output.dtype, device=output.device)
        if sigma.ndim == 1:
            sigma = sigma.view(-1, 1, 1, 1)
        return output / sigma

    def extra_repr(self) -> str:
        s = self.settings
        return (f"channels={s.channels}, latent_channels={s.latent_channels}, depth={s.depth}, "
                f"num_blocks={s.num_blocks}, dropout={s.dropout}")
