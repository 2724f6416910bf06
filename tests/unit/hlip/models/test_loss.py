"""CLIP, SigLIP and masked BCE losses, including cross-rank gathering under torch.distributed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hlip.models.loss import ClipLoss, MultiLabelBCELoss, SigLipLoss, create_loss


def features(n: int = 6, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
    txt = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
    return img, txt


def test_clip_loss_is_symmetric_infonce() -> None:
    img, txt = features()
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.T
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    loss = ClipLoss()(image_features=img, text_features=txt, logit_scale=scale)
    torch.testing.assert_close(loss, expected)
    aligned = ClipLoss()(image_features=img, text_features=img, logit_scale=torch.tensor(100.0))
    assert float(aligned) < float(loss)
    assert set(ClipLoss()(img, txt, scale, output_dict=True)) == {"contrastive_loss"}


NAN = float("nan")


def test_label_targets_zero_is_plain_clip_and_distinct_labels_change_nothing() -> None:
    img, txt = features()
    scale = torch.tensor(10.0)
    plain = ClipLoss()(img, txt, scale)
    labels = torch.tensor([[0, 0, 0]] * 6, dtype=torch.float32)
    torch.testing.assert_close(ClipLoss(label_targets=0.0)(img, txt, scale, labels=labels), plain)
    distinct = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1],
                             [0, 0, 0, 0, 0]], dtype=torch.float32)  # fmt: skip
    torch.testing.assert_close(ClipLoss(label_targets=0.7)(img, txt, scale, labels=distinct), plain)


def test_label_targets_share_mass_between_studies_with_agreeing_labels() -> None:
    """Normal studies (no positive finding) match each other; uncertain (-1) and unknown (NaN) are not positive."""
    labels = torch.tensor([[0, 0], [-1, NAN], [1, 0], [1, 0], [0, 1]], dtype=torch.float32)
    soft = ClipLoss(label_targets=0.5).soft_targets(labels, torch.arange(5), 5)
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(5))
    expected = torch.tensor([[0.75, 0.25, 0, 0, 0], [0.25, 0.75, 0, 0, 0], [0, 0, 0.75, 0.25, 0],
                             [0, 0, 0.25, 0.75, 0], [0, 0, 0, 0, 1.0]])  # fmt: skip
    torch.testing.assert_close(soft, expected)


def test_label_targets_stop_pushing_apart_studies_with_the_same_labels() -> None:
    """Study 0's embedding turned from its own report (angle 0) towards study 1's report: plain CLIP is lowest
    fully on its own report; with label targets the optimum lies in between when both studies carry the same
    labels, and stays on its own report when their labels differ."""
    txt = torch.eye(4)
    scale = torch.tensor(10.0)
    angles = torch.linspace(0.0, torch.pi / 2, 31)

    def best_angle(loss: ClipLoss, labels: torch.Tensor | None) -> float:
        values = []
        for a in angles:
            img = torch.eye(4)
            img[0] = torch.cos(a) * txt[0] + torch.sin(a) * txt[1]
            values.append(float(loss(img, txt, scale, labels=labels)))
        return float(angles[int(torch.tensor(values).argmin())])

    same = torch.tensor([[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    other = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    assert best_angle(ClipLoss(), same) == 0.0
    assert 0.0 < best_angle(ClipLoss(label_targets=0.5), same) <= torch.pi / 4 + 1e-6
    assert best_angle(ClipLoss(label_targets=0.5), other) == 0.0


def test_label_targets_need_labels_and_a_weight_in_range() -> None:
    img, txt = features()
    with pytest.raises(ValueError, match="needs the studies' finding labels"):
        ClipLoss(label_targets=0.5)(img, txt, torch.tensor(10.0))
    with pytest.raises(ValueError, match=r"label_targets must lie in \[0, 1\]"):
        ClipLoss(label_targets=1.5)


def test_siglip_loss_matches_pairwise_sigmoid() -> None:
    img, txt = features()
    scale, bias = torch.tensor(10.0), torch.tensor(-10.0)
    logits = scale * img @ txt.T + bias
    labels = 2 * torch.eye(6) - 1
    expected = -F.logsigmoid(labels * logits).sum() / 6
    torch.testing.assert_close(SigLipLoss()(img, txt, scale, bias), expected)
    with pytest.raises(ValueError, match="logit_bias"):
        SigLipLoss()(img, txt, scale)


def test_bce_masks_uncertain_labels() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    labels = torch.tensor([[1, -1, 0], [-1, 1, 1]])
    known = labels >= 0
    expected = F.binary_cross_entropy_with_logits(logits[known], labels[known].float())
    torch.testing.assert_close(MultiLabelBCELoss()(logits=logits, labels=labels), expected)
    changed = logits.clone()
    changed[0, 1] = 100.0  # an uncertain entry: no effect
    torch.testing.assert_close(MultiLabelBCELoss()(changed, labels), expected)
    assert float(MultiLabelBCELoss()(logits, torch.full_like(labels, -1))) == 0.0


def test_create_loss() -> None:
    assert isinstance(create_loss("siglip"), SigLipLoss)
    with pytest.raises(ValueError, match="unknown loss"):
        create_loss("triplet")


WORKER = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    from hlip.models.loss import ClipLoss, SigLipLoss
    rank, init_file, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    data = torch.load(sys.argv[4])
    n = data["img"].shape[0] // 2
    result = {}
    for name, loss_fn in [
        ("clip", ClipLoss(rank=rank, world_size=2)),
        ("clip_local", ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=2)),
        ("siglip", SigLipLoss(rank=rank, world_size=2)),
    ]:
        img = data["img"][rank * n : (rank + 1) * n].clone().requires_grad_(True)
        txt = data["txt"][rank * n : (rank + 1) * n].clone().requires_grad_(True)
        loss = loss_fn(img, txt, torch.tensor(10.0), torch.tensor(-5.0) if name == "siglip" else None)
        loss.backward()
        result[name] = (loss.detach(), img.grad, txt.grad)
    torch.save(result, out)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def test_losses_gather_features_across_two_ranks(tmp_path: Path) -> None:
    img, txt = features(n=8)
    torch.save({"img": img, "txt": txt}, tmp_path / "data.pt")
    args = [str(tmp_path / "init"), str(tmp_path / "data.pt")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(r), args[0], str(tmp_path / f"r{r}.pt"), args[1]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    ranks = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    scale = torch.tensor(10.0)
    full_clip = ClipLoss()(img, txt, scale)
    for r in range(2):
        torch.testing.assert_close(ranks[r]["clip"][0], full_clip)  # every rank sees the global batch
    # local loss: mean of the ranks' losses is the global loss; gradients match the global loss's.
    torch.testing.assert_close((ranks[0]["clip_local"][0] + ranks[1]["clip_local"][0]) / 2, full_clip)
    img_g, txt_g = img.clone().requires_grad_(True), txt.clone().requires_grad_(True)
    ClipLoss()(img_g, txt_g, scale).backward()
    assert img_g.grad is not None
    grad = torch.cat([ranks[0]["clip_local"][1], ranks[1]["clip_local"][1]]) / 2  # DDP averages over ranks
    torch.testing.assert_close(grad, img_g.grad)
    # SigLIP: the sum over ranks covers every image-text pair once.
    full_siglip = SigLipLoss()(img, txt, scale, torch.tensor(-5.0)) * 8
    torch.testing.assert_close(ranks[0]["siglip"][0] * 4 + ranks[1]["siglip"][0] * 4, full_siglip)
