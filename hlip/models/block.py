"""Pre-norm transformer block with timm attribute names (`norm1`, `attn`, `norm2`, `mlp.fc1`, `mlp.fc2`)."""

from __future__ import annotations

from torch import Tensor, nn

from hlip.models.attention import Attention
from hlip.models.hierarchy import AttentionGroups


class Mlp(nn.Module):
    """`fc1` -> GELU -> `fc2`."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """`[..., C] -> [..., C]`."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole attention groups.

    Dense inputs `[G, L, C]` draw one decision per group (as timm does on upstream's regrouped tensors);
    packed inputs `[1, T, C]` draw one per study, broadcast to its tokens through `groups.token_group`.
    """

    def __init__(self, prob: float = 0.0) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor, groups: AttentionGroups | None = None) -> Tensor:
        """Scale kept branches by 1 / (1 - prob), zero dropped ones (training only)."""
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        if groups is None:
            mask = x.new_empty(x.shape[0], 1, 1).bernoulli_(keep)  # [G, 1, 1]
        else:
            per_study = x.new_empty(groups.num_groups).bernoulli_(keep)  # [B]
            mask = per_study[groups.token_group][None, :, None]  # [1, T, 1]
        return x * mask / keep


class Block(nn.Module):
    """`x + attn(norm1(x))`, then `x + mlp(norm2(x))`.

    Args:
        dim: Token width C.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / C.
        qkv_bias: Bias on the qkv projection.
        drop_path: Stochastic-depth rate of this block.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: Tensor, groups: AttentionGroups | None = None) -> Tensor:
        """`[G, L, C]` (or packed `[1, T, C]` with `groups`) -> same shape."""
        x = x + self.drop_path1(self.attn(self.norm1(x), groups), groups)
        return x + self.drop_path2(self.mlp(self.norm2(x)), groups)


def init_vit_weights(module: nn.Module) -> None:
    """timm's ViT init: truncated-normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
