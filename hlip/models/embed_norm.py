"""BatchNorm on the study embedding (a "BNNeck", Luo et al. 2019), for small from-scratch runs.

A freshly initialised HLIP tower gives nearly the same embedding for every study: the pooled tokens are dominated
by the positional embedding and the CLS token, which are identical across studies, and the study-specific part
is under 1% of the norm (docs/demo-model.md). A linear head on top then sees an almost constant input; BCE
warm-up settles at the label prior and contrastive logits are all alike. Standardising each embedding dimension
over the batch puts the study-to-study variation at unit scale from the first step. On the synthetic
bright-sphere task (`benchmarks/bench_learnability.py`) this takes the max-pooled conv stem from 0.77 to 1.00
test AUC. Large upstream runs do not need it, so it is off unless a config asks for it (`embed_norm`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class EmbedBatchNorm(nn.BatchNorm1d):
    """`BatchNorm1d` over `[B, C]` embeddings that also accepts a training batch of one study.

    A batch of one has no spread to standardise by (plain `BatchNorm1d` raises), e.g. the last, partial batch of
    an epoch or one rank's share under DDP: it is normalised with the running statistics, which it leaves
    unchanged. Evaluation and serving always use the running statistics.
    """

    def forward(self, input: Tensor) -> Tensor:
        if self.training and input.shape[0] < 2:
            stats = (self.running_mean, self.running_var)
            return F.batch_norm(input, *stats, self.weight, self.bias, training=False, momentum=0.0, eps=self.eps)
        return super().forward(input)
