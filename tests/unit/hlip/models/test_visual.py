"""Vision tower: upstream-equivalent forward, batch independence, resampling, checkpointing, dropout."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from hlip.models.config import VisionConfig
from hlip.models.packing import StudyPacking
from hlip.models.visual import FOREGROUND_LEVEL, VisionTransformer3D, erode_foreground, zscore, zscore_foreground

Batch = Callable[..., tuple[Tensor, Tensor]]
SIZE = (16, 32, 32)  # per scan -> grid (2, 2, 2) with 8x16x16 patches


def make_vit(levels: tuple[str, ...], pool: str = "dinotxt", reg_tokens: int = 1, **kw: object) -> VisionTransformer3D:
    torch.manual_seed(0)
    cfg = VisionConfig(
        image_size=SIZE,
        patch_size=(8, 16, 16),
        width=24,
        depth=len(levels),
        heads=2,
        levels=levels,
        reg_tokens=reg_tokens,
        pool=pool,
        max_scans=8,
        **kw,  # type: ignore[arg-type]
    )
    return VisionTransformer3D(cfg, embed_dim=16).eval()


def reference_features(model: VisionTransformer3D, x: Tensor) -> Tensor:
    """Upstream HLIP's forward for a fixed scan count, written out level by level on [B*N...] tensors."""
    N = x.shape[1]
    P = model.cfg.num_prefix_tokens
    patches = model._position(model._stem(x.flatten(0, 1)), StudyPacking.from_batch(x))  # [B*N, d, t, C]
    _, d, t, C = patches.shape
    size = {"slice": t, "scan": d * t, "study": N * d * t}  # patch tokens per group
    factor = {"slice": 1, "scan": d, "study": N * d}  # slabs per group

    def merge(z: Tensor, k: int) -> Tensor:
        prefix = z[:, :P].reshape(-1, k, P, C).mean(dim=1)
        return torch.cat([prefix, z[:, P:].reshape(prefix.shape[0], -1, C)], dim=1)

    def split(z: Tensor, k: int) -> Tensor:
        prefix = z[:, :P][:, None].expand(-1, k, P, C)
        src = z[:, P:].reshape(z.shape[0], k, -1, C)
        return torch.cat([prefix, src], dim=2).reshape(z.shape[0] * k, -1, C)

    level = model.cfg.levels[0]
    z = patches.reshape(-1, size[level], C)
    z = torch.cat([model._prefix(z.shape[0]), z], dim=1)
    for blk, nxt in zip(model.blocks, model.cfg.levels, strict=True):
        if factor[nxt] > factor[level]:
            z = merge(z, factor[nxt] // factor[level])
        elif factor[nxt] < factor[level]:
            z = split(z, factor[level] // factor[nxt])
        level = nxt
        z = blk(z)
    if level != "study":
        z = merge(z, factor["study"] // factor[level])
    z = model.norm(z)  # [B, P + N*d*t, C]
    if model.cfg.pool == "cls":
        return z[:, 0]
    if model.cfg.pool == "map":
        return torch.cat([z[:, 0], reference_attention_pool(model, z[:, P:])], dim=-1)
    return torch.cat([z[:, 0], z[:, P:].mean(dim=1)], dim=-1)  # DINO.txt row 0: CLS + mean patch token


def reference_attention_pool(model: VisionTransformer3D, tokens: Tensor) -> Tensor:
    """Attention pooling written out: per head, softmax(q k^T / sqrt(dh)) v of each learned query: `[B, L, C] ->
    [B, Q*C]`."""
    pool = model.attn_pool
    assert pool is not None
    C = tokens.shape[-1]
    h = pool.heads
    dh = C // h
    q = pool.q(pool.query[0])  # [Q, C]
    k, v = pool.kv(tokens).split(C, dim=-1)  # [B, L, C]
    reads = []
    for head in range(h):
        cols = slice(head * dh, (head + 1) * dh)
        weights = torch.softmax(q[None, :, cols] @ k[..., cols].transpose(1, 2) / dh**0.5, dim=-1)  # [B, Q, L]
        reads.append(weights @ v[..., cols])  # [B, Q, dh]
    return pool.proj(torch.cat(reads, dim=-1)).flatten(1)  # [B, Q*C]


LEVEL_SETS = [
    ("slice", "scan", "study"),
    ("scan", "scan", "study"),
    ("study", "slice", "scan"),
    ("study", "study", "study"),  # full attention
]


@pytest.mark.parametrize("levels", LEVEL_SETS)
@pytest.mark.parametrize("pool", ["cls", "dinotxt", "map"])
def test_forward_matches_upstream_reference(levels: tuple[str, ...], pool: str, study_batch: Batch) -> None:
    model = make_vit(levels, pool=pool)
    x, _ = study_batch([3, 3], SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), reference_features(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("levels", LEVEL_SETS)
@pytest.mark.parametrize("pool", ["dinotxt", "map"])
def test_packed_batch_equals_each_study_alone(levels: tuple[str, ...], pool: str, study_batch: Batch) -> None:
    """A study's embedding does not depend on its batch-mates (padding dropped, no duplicated scans)."""
    model = make_vit(levels, pool=pool)
    counts = [3, 1, 4, 2, 3]
    x, mask = study_batch(counts, SIZE)
    with torch.no_grad():
        packed = model(x, mask)
        for b, n in enumerate(counts):
            alone = model(x[b : b + 1, :n])
            torch.testing.assert_close(packed[b], alone[0], rtol=0, atol=1e-5)
            ref = model.head(reference_features(model, x[b : b + 1, :n]))
            torch.testing.assert_close(packed[b], ref[0], rtol=0, atol=1e-5)
        # Other batch-mates, other order, other padding width.
        order = [4, 2, 0]
        x2, mask2 = study_batch([counts[i] for i in order] + [6], SIZE, seed=1)
        for row, b in enumerate(order):
            x2[row, : counts[b]] = x[b, : counts[b]]
        mixed = model(x2, mask2)
        for row, b in enumerate(order):
            torch.testing.assert_close(mixed[row], packed[b], rtol=0, atol=1e-5)


def test_forward_with_stem_gives_the_embedding_and_each_scans_strongest_stem_token(study_batch: Batch) -> None:
    """The stem read-out is each real scan's maximum over its patch-embedding tokens, per channel, with the scans'
    studies: padded scans (filled with a bright value here) never enter it, a study's maximum is over its own scans
    only, and the embedding is `forward`'s."""
    model = make_vit(("scan", "study"), input_norm="zscore")
    counts = [3, 1, 2]
    x, mask = study_batch(counts, SIZE)
    x[~mask] = 50.0  # padding that would dominate any maximum it leaked into
    with torch.no_grad():
        embedding, stem = model.forward_with_stem(x, mask)
        torch.testing.assert_close(embedding, model(x, mask), rtol=0, atol=0)
        assert stem.scans.shape == (sum(counts), model.cfg.width)
        studies = stem.study_max()
        assert studies.shape == (3, model.cfg.width)
        start = 0
        for b, n in enumerate(counts):
            tokens = model.patch_embed(zscore(x[b, :n]))  # [n, d, h, w, C], the scans alone
            torch.testing.assert_close(stem.scans[start : start + n], tokens.flatten(1, 3).amax(dim=1), rtol=0,
                                       atol=1e-6)  # fmt: skip
            torch.testing.assert_close(studies[b], tokens.flatten(0, 3).amax(dim=0), rtol=0, atol=1e-6)
            start += n
        _, uniform = model.forward_with_stem(x[:1, :3])  # one study, no mask: the dense path
        torch.testing.assert_close(uniform.study_max()[0], studies[0], rtol=0, atol=1e-6)


def test_all_real_mask_equals_no_mask(study_batch: Batch) -> None:
    model = make_vit(("scan", "study"))
    x, mask = study_batch([2, 2], SIZE)
    with torch.no_grad():
        assert torch.equal(model(x, mask), model(x))


def test_attention_pooling_reads_every_real_scan_and_no_padding(study_batch: Batch) -> None:
    """Each learned query's read of a study changes when one of its real scans changes, not when padding does;
    the study feature is the CLS token joined to the Q reads."""
    model = make_vit(("scan", "study"), pool="map", pool_queries=3)
    assert model.cfg.num_features == 4 * 24
    counts = [3, 2]
    x, mask = study_batch(counts, SIZE)
    with torch.no_grad():
        base = model.forward_features(x, mask)
        assert base.shape == (2, 4 * 24)
        padded = x.clone()
        padded[1, 2] = 7.0  # the second study's padding slot
        torch.testing.assert_close(model.forward_features(padded, mask), base, rtol=0, atol=0)
        changed = x.clone()
        changed[1, 1] = changed[1, 1].flip(-1)  # a real scan of the second study
        moved = model.forward_features(changed, mask)
    torch.testing.assert_close(moved[0], base[0], rtol=0, atol=0)
    for query in range(3):
        read = slice(24 * (1 + query), 24 * (2 + query))
        assert not torch.allclose(moved[1, read], base[1, read], atol=1e-4)


def test_attention_pooling_needs_a_query() -> None:
    with pytest.raises(ValueError, match="pool_queries must be >= 1"):
        make_vit(("scan", "study"), pool="map", pool_queries=0)


def test_other_depth_grid_resamples_positions(study_batch: Batch) -> None:
    """Trained at 16 slices (2 slabs), evaluated at 48 (6 slabs)."""
    model = make_vit(("slice", "scan", "study"))
    x, mask = study_batch([2, 1], (48, 32, 32))
    with torch.no_grad():
        out = model(x, mask)
    assert out.shape == (2, 16)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.randn(1, 1, 1, 20, 32, 32))


def test_gradient_checkpointing_gives_same_outputs_and_grads(study_batch: Batch) -> None:
    model = make_vit(("slice", "scan", "study"), drop_path=0.3, patch_dropout=0.25).train()
    x, mask = study_batch([2, 1, 3], SIZE)
    results = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(1)
        out = model(x, mask)
        out.square().sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((out.detach(), grads))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    assert len(results[0][1]) == len(results[1][1]) > 0
    for g0, g1 in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(g0, g1, rtol=1e-5, atol=1e-6)


def test_patch_dropout_keeps_same_count_per_slab_in_order() -> None:
    model = make_vit(("scan",), patch_dropout=0.5).train()
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8, 1).expand(2, 3, 8, 4)
    kept = model._patch_dropout(x)
    assert kept.shape == (2, 3, 4, 4)
    values = kept[..., 0]
    assert (values.diff(dim=-1) > 0).all()  # a sorted subset of each slab
    assert ((values // 8) == torch.arange(6).view(2, 3, 1)).all()  # taken from its own slab
    assert torch.equal(model.eval()._patch_dropout(x), x)


def test_training_forward_with_dropout_is_finite_and_differentiable(study_batch: Batch) -> None:
    model = make_vit(("slice", "scan", "study"), drop_path=0.2, patch_dropout=0.5).train()
    x, mask = study_batch([2, 1, 4], SIZE)
    out = model(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert model.cls_token.grad is not None
    assert model.patch_embed.proj.weight.grad is not None


def test_stem_patch_embedding_shapes() -> None:
    model = make_vit(("scan", "study"), stem_channels=(4, 8))
    tokens = model.patch_embed(torch.randn(3, 1, *SIZE))
    assert tokens.shape == (3, 2, 2, 2, 24)


@pytest.mark.parametrize(
    ("kw", "stem_layers"),
    [
        ({"stem_channels": (4, 8), "stem_downsample": True}, ("Conv3d", "GELU", "MaxPool3d", "Conv3d", "GELU")),
        ({"stem_channels": (4, 8, 8, 8), "stem_pool": "stride"}, ("Conv3d", "BatchNorm3d", "ReLU") * 4),
    ],
)
def test_stem_variants_reach_the_patch_grid_and_normalise_tokens(kw: dict[str, object], stem_layers: tuple) -> None:
    model = make_vit(("scan", "study"), patch_norm=True, **kw)
    stem = model.patch_embed.stem
    assert stem is not None
    assert tuple(type(m).__name__ for m in stem)[: len(stem_layers)] == stem_layers
    x = torch.randn(3, 1, *SIZE)
    tokens = model.patch_embed(x)
    assert tokens.shape == (3, 2, 2, 2, 24)
    # patch_norm: every token is LayerNorm'ed (zero mean, unit variance over channels at init)
    assert torch.allclose(tokens.mean(-1), torch.zeros(3, 2, 2, 2), atol=1e-5)
    assert torch.allclose(tokens.var(-1, unbiased=False), torch.ones(3, 2, 2, 2), atol=1e-3)
    # tokens depend on the content of their own scan only
    y = x.clone()
    y[0, 0, :8, :16, :16] += 3.0
    changed = (model.patch_embed(y) - tokens).abs().amax(dim=(1, 2, 3, 4))  # [3]
    assert changed[0] > 0
    assert torch.equal(changed[1:], torch.zeros(2))


def test_stem_downsample_needs_a_divisible_patch() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        make_vit(("scan",), stem_channels=(4, 8, 8, 8, 8, 8), stem_downsample=True)


def test_zscore_input_makes_the_study_embedding_invariant_to_each_scans_intensity_scale(study_batch: Batch) -> None:
    x, mask = study_batch([2, 3], SIZE)
    gain = torch.tensor([0.5, 3.0, 1.7])[None, :, None, None, None, None]  # a different window/level per scan
    rescaled = x * gain + 0.25
    model = make_vit(("scan", "study"), input_norm="zscore")
    with torch.no_grad():
        torch.testing.assert_close(model(rescaled, mask), model(x, mask), atol=1e-4, rtol=1e-4)
        plain = make_vit(("scan", "study"))
        assert not torch.allclose(plain(rescaled, mask), plain(x, mask), atol=1e-3)


def test_zscore_input_keeps_a_constant_scan_finite(study_batch: Batch) -> None:
    x, mask = study_batch([2], SIZE)
    x[0, 1] = 0.7  # an empty (constant) scan: no variance to divide by
    model = make_vit(("scan", "study"), input_norm="zscore")
    with torch.no_grad():
        assert torch.isfinite(model(x, mask)).all()


def test_foreground_zscore_ignores_how_much_air_surrounds_the_head() -> None:
    torch.manual_seed(1)
    head = 0.3 + 0.5 * torch.rand(1, 1, 8, 8, 8)
    small = torch.zeros(1, 1, 8, 16, 16)
    small[..., 4:12, 4:12] = head
    wide = torch.zeros(1, 1, 8, 32, 32)  # the same head in a field of view with 4x the air
    wide[..., 12:20, 12:20] = head
    a, b = zscore_foreground(small), zscore_foreground(wide)
    torch.testing.assert_close(a[..., 4:12, 4:12], b[..., 12:20, 12:20])
    assert a[..., 4:12, 4:12].mean().abs() < 1e-5
    assert abs(float(a[..., 4:12, 4:12].std(unbiased=False)) - 1.0) < 1e-3
    assert (a[..., :4, :] == 0).all()
    assert (b[..., :12, :] == 0).all()
    # the whole-volume z-score depends on the field of view: the same head gets different values
    assert not torch.allclose(zscore(small)[..., 4:12, 4:12], zscore(wide)[..., 12:20, 12:20], atol=1e-2)


def test_foreground_zscore_of_an_empty_scan_is_zeros() -> None:
    out = zscore_foreground(torch.zeros(2, 1, 4, 8, 8))
    assert torch.equal(out, torch.zeros_like(out))


def test_foreground_zscore_input_is_invariant_to_each_scans_gain(study_batch: Batch) -> None:
    x, mask = study_batch([2, 3], SIZE)
    x = torch.where(x > 0.5, x, torch.zeros_like(x))  # a background of exact zeros
    gain = torch.tensor([0.6, 1.0, 0.9])[None, :, None, None, None, None]  # foreground stays above the level
    model = make_vit(("scan", "study"), input_norm="zscore_foreground")
    with torch.no_grad():
        torch.testing.assert_close(model(x * gain, mask), model(x, mask), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("voxels", [1, 2, 3])
def test_foreground_erosion_keeps_what_scipys_binary_erosion_keeps(voxels: int) -> None:
    """A head with holes, a thin rim and contact with the volume's border: the kept voxels are exactly those of
    `scipy.ndimage.binary_erosion` (6-connected cross, outside = background), each with its own value."""
    ndimage = pytest.importorskip("scipy.ndimage")
    gen = torch.Generator().manual_seed(voxels)
    scans = torch.rand(3, 1, 10, 20, 18, generator=gen)
    scans[0, 0, :, :, :2] = 0.0  # background along one side; the other sides touch the border
    scans[1] = (scans[1] > 0.3).float() * scans[1]  # scattered holes
    scans[2, 0, 2:8, 4:16, 4:14] = 0.0  # a head that is only a rim around an empty middle
    out = erode_foreground(scans, voxels)
    for scan, kept in zip(scans, out, strict=True):
        want = ndimage.binary_erosion((scan[0] > FOREGROUND_LEVEL).numpy(), iterations=voxels)
        assert torch.equal(kept[0] != 0, torch.from_numpy(want))
        torch.testing.assert_close(kept[0][want], scan[0][want], rtol=0, atol=0)


def test_foreground_erosion_sets_everything_it_takes_off_to_an_exact_zero() -> None:
    """What erosion takes off is +0.0 whatever was there: negative values, NaN and infinities of a damaged scan
    included (a product with the mask would leave -0.0 and NaN)."""
    scans = torch.zeros(1, 1, 8, 12, 12)
    scans[0, 0, 1:7, 2:10, 2:10] = 1.0
    scans[0, 0, 0, 0, :4] = torch.tensor([-5.0, float("nan"), float("inf"), float("-inf")])
    scans[0, 0, 1, 2, 2] = -3.0  # the head's corner, below the level: background, eroded away
    out = erode_foreground(scans, 1)
    off = out[~(scans > FOREGROUND_LEVEL)]  # NaN compares False: taken off
    assert torch.equal(out[0, 0, 0, 0, :4], torch.zeros(4))
    assert not torch.signbit(out).any()
    assert not torch.isnan(out).any()
    assert torch.equal(out[0, 0, 2:6, 3:9, 3:9], scans[0, 0, 2:6, 3:9, 3:9])  # the eroded head keeps its values
    assert off.abs().sum() == 0


def test_foreground_erosion_strips_the_rim_before_the_zscore(study_batch: Batch) -> None:
    x, mask = study_batch([2, 1], SIZE)
    plain = make_vit(("scan", "study"), input_norm="zscore_foreground")
    eroded = make_vit(("scan", "study"), input_norm="zscore_foreground", foreground_erosion=2)
    with torch.no_grad():
        rim = x.clone()
        rim[..., :, :, :2] = 1.0  # a bright band at the volume's edge, inside what erosion takes off
        assert torch.allclose(eroded(rim, mask), eroded(x, mask), atol=1e-6)
        assert not torch.allclose(plain(rim, mask), plain(x, mask), atol=1e-3)
    with pytest.raises(ValueError, match="foreground_erosion"):
        make_vit(("scan",), foreground_erosion=-1)


def test_unknown_input_norm_is_rejected() -> None:
    with pytest.raises(ValueError, match="input_norm"):
        make_vit(("scan",), input_norm="minmax")


def test_uint8_scans_equal_their_float_scaling(study_batch: Batch) -> None:
    model = make_vit(("scan", "study"))
    x, mask = study_batch([2, 1], SIZE)
    raw = (x * 255).round().to(torch.uint8)  # what the loader hands over
    with torch.no_grad():
        torch.testing.assert_close(model(raw, mask), model(raw.float() / 255, mask), rtol=0, atol=0)
        assert not torch.allclose(model(raw, mask), model(raw.float(), mask))  # so the scaling really happened


def test_a_locked_stem_is_a_fixed_function_of_each_scan_and_gets_no_gradient() -> None:
    """`lock_stem` (`pretrain.<stage>.freeze_stem`): in training mode the stem's BatchNorm keeps its running
    statistics (a scan's tokens do not depend on the other scans of the batch), no stem parameter gets a gradient,
    the patch projection and the blocks still do."""
    model = make_vit(("scan", "study"), stem_channels=(4, 8), stem_pool="stride")
    stem = model.patch_embed.stem
    assert stem is not None
    x = torch.randn(3, 1, *SIZE)
    others = torch.cat([x[:1], 5.0 * x[1:] + 2.0])  # the first scan beside two very different ones
    model.train()
    unlocked = (model.patch_embed(x[:1]) - model.patch_embed(others)[:1]).abs().max()
    assert unlocked > 1e-2  # BatchNorm's batch statistics mix the scans of a batch
    model.patch_embed.lock_stem()
    model.train()
    assert model.training
    assert model.patch_embed.proj.training
    assert not any(layer.training for layer in stem)
    alone = model.patch_embed(x[:1])
    assert torch.allclose(alone, model.patch_embed(others)[:1], rtol=1e-5, atol=1e-6)
    model.eval()
    assert torch.equal(model.patch_embed(x[:1]), alone)  # the same function in eval mode
    model.train()
    model.patch_embed(x).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in stem.parameters())
    assert model.patch_embed.proj.weight.grad is not None


def test_locking_the_first_convolution_leaves_the_rest_of_the_stem_trainable_and_the_weights_named_as_before() -> None:
    model = make_vit(("scan", "study"), stem_channels=(4, 8), stem_pool="stride")
    stem = model.patch_embed.stem
    assert stem is not None
    keys = list(model.state_dict())
    model.patch_embed.lock_stem(1)
    model.train()
    assert list(model.state_dict()) == keys  # nothing new to save or load
    assert [m.training for m in stem] == [False, False, False, True, True, True]  # conv, BN, ReLU x 2
    assert [p.requires_grad for p in stem.parameters()] == [False, False, False, True, True, True]
    model.patch_embed(torch.randn(2, 1, *SIZE)).sum().backward()
    assert stem[0].weight.grad is None
    assert stem[3].weight.grad is not None


@pytest.mark.parametrize("convolutions", [0, 3])
def test_locking_more_convolutions_than_the_stem_has_fails(convolutions: int) -> None:
    model = make_vit(("scan", "study"), stem_channels=(4, 8), stem_pool="stride")
    with pytest.raises(ValueError, match=f"cannot lock {convolutions} of the stem's 2 convolutions"):
        model.patch_embed.lock_stem(convolutions)


def test_a_linear_patch_embedding_has_no_stem_to_lock() -> None:
    with pytest.raises(ValueError, match="no convolutional stem"):
        make_vit(("scan",)).patch_embed.lock_stem()
