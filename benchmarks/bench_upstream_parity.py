"""Upstream parity: every upstream HLIP model, built by upstream's own code, imported with `hlip model import`.

For each upstream registered vision model (`hlip.models.upstream_configs.UPSTREAM_MODELS`) the harness builds the
whole open_clip CLIP model with upstream's `visual_encoder.py` (timm + open_clip from a scratch folder), perturbs
every weight at random, saves it in each format (open_clip training dict with `module.`, plain state dict,
safetensors, released open_clip folder, bare timm trunk), imports each with our CLI (strict) and prints the max
abs difference and the smallest cosine between upstream's and our output rows for 1-4 scans at batch 2, and the
text embedding, in fp32 on `--device` (TF32 off); then forward+backward time of the vision tower, ours vs
upstream, on the same config and batch.

Nothing of upstream is vendored: pass a checkout and a package folder, e.g.

    pip install --target /tmp/upstream-pkgs --no-deps timm==1.0.15 open_clip_torch==3.3.0 ftfy
    .venv/bin/python benchmarks/bench_upstream_parity.py --upstream /path/to/hlip --pkgs /tmp/upstream-pkgs \
        --tvstub /work/shared/tools/tvstub.py            # CPU: reduced widths and scan sizes (default)
    .venv/bin/python benchmarks/bench_upstream_parity.py ... --full --device cuda --dtype bf16   # real sizes

Upstream's package is also called `hlip`; it is loaded as `upstream_hlip` so it cannot shadow this one. Text
towers are a tiny BERT (`testkit.tiny_bert`) in upstream's `HFTextEncoder` layout. `--reduced` keeps every model's
depth, level pattern, heads, registers, head and tables and shrinks the width and scan size (CPU only has 2 cores).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hlip.models import add_model_config, get_model_config  # noqa: E402
from hlip.models.upstream_configs import UPSTREAM_MODELS, UpstreamModel  # noqa: E402

FORMATS = ("open_clip_dict", "plain", "safetensors", "folder", "timm_trunk")
# --reduced: (width, heads, scan size) per upstream family; the token grid stays 4x4x4 (2x4x4 for 16^3 patches)
REDUCED = {
    "1568": (96, 12, (24, 64, 64)),
    "1176": (96, 12, (32, 64, 64)),
    "588": (96, 12, (32, 64, 64)),
    "2744": (96, 12, (32, 96, 96)),
}
REDUCED_LARGE = (96, 16)  # upstream's 3D sin-cos needs width % 6 == 0 (1024 is not: see docs/upstream.md)


def load_upstream(checkout: Path, pkgs: Path, tvstub: Path | None) -> types.ModuleType:
    """Import timm/open_clip from `pkgs` and upstream's `src/hlip` package as `upstream_hlip`."""
    sys.path.insert(0, str(pkgs))
    if tvstub is not None:
        exec(compile(tvstub.read_text(), str(tvstub), "exec"), {"__name__": "tvstub"})  # torchvision stand-in
    package = types.ModuleType("upstream_hlip")
    package.__path__ = [str(checkout / "src" / "hlip")]
    sys.modules["upstream_hlip"] = package
    return importlib.import_module("upstream_hlip.visual_encoder")


def reduced_size(model: UpstreamModel, full: bool) -> dict[str, Any]:
    """Vision overrides of our config (and kwargs of upstream's factory) for this run."""
    cfg = get_model_config(model.ours).vision
    if full:
        return {"width": cfg.width, "heads": cfg.heads, "image_size": list(cfg.image_size)}
    width, heads, size = REDUCED[model.name.rsplit("token", 1)[-1].rsplit("dinotxt", 1)[-1]]
    if cfg.width > 768:
        width, heads = REDUCED_LARGE
    return {"width": width, "heads": heads, "image_size": list(size)}


def build_upstream(model: UpstreamModel, size: dict[str, Any], bert: Path, work: Path, full: bool) -> Any:
    """Upstream's open_clip CLIP for `model` at `size`; returns (clip, open_clip config dict)."""
    import open_clip
    from timm.models import register_model

    upstream_fn = getattr(sys.modules["upstream_hlip.visual_encoder"], model.name)
    timm_name = model.name
    if not full:  # a registered wrapper: open_clip passes only drop rates to timm
        kwargs = {"embed_dim": size["width"], "num_heads": size["heads"], "img_size": tuple(size["image_size"])}

        def entry(pretrained: bool = False, **kw: Any) -> Any:
            return upstream_fn(pretrained=False, **{**kw, **kwargs})

        timm_name = f"bench_{model.name}"
        entry.__name__ = timm_name
        entry.__module__ = __name__
        register_model(entry)
    ours = get_model_config(model.ours)
    cfg: dict[str, Any] = {
        "embed_dim": ours.embed_dim,
        "vision_cfg": {"timm_model_name": timm_name, "timm_model_pretrained": False, "timm_pool": "token"},
        "text_cfg": {
            "hf_model_name": str(bert),
            "hf_tokenizer_name": str(bert),
            "hf_pooler_type": "cls_last_hidden_state_pooler",
            "hf_proj_type": "linear",
            "hf_model_pretrained": False,
            "context_length": 32,
        },
    }
    cfg["vision_cfg"]["timm_proj"] = "linear"
    if ours.init_logit_bias is not None:
        cfg["init_logit_bias"] = ours.init_logit_bias
    open_clip.factory._MODEL_CONFIGS[f"clip_{timm_name}"] = cfg
    clip = open_clip.create_model(f"clip_{timm_name}", pretrained=None)
    return clip.eval(), cfg


@torch.no_grad()
def perturb(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        shift = 1.0 if p.ndim == 1 and p.shape[0] > 1 else 0.0
        p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + shift)


def save_formats(clip: Any, cfg: dict[str, Any], bert: Path, out: Path) -> dict[str, tuple[Path, list[str]]]:
    """Each format's path and the extra CLI arguments it needs."""
    import shutil

    state = {k: v.detach().contiguous() for k, v in clip.state_dict().items()}
    text = ["--text-model-dir", str(bert)]
    paths: dict[str, tuple[Path, list[str]]] = {}
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, out / "epoch_1.pt")
    paths["open_clip_dict"] = (out / "epoch_1.pt", text)
    torch.save(state, out / "plain.pt")
    paths["plain"] = (out / "plain.pt", text)
    save_file(state, str(out / "open_clip_model.safetensors"))
    paths["safetensors"] = (out / "open_clip_model.safetensors", text)
    folder = out / "released"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    for name in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(bert / name, folder / name)
    paths["folder"] = (folder, [])
    torch.save({k: v.contiguous() for k, v in clip.visual.trunk.state_dict().items()}, out / "trunk.pth")
    paths["timm_trunk"] = (out / "trunk.pth", [*text, "--scope", "trunk"])
    return paths


def our_config(model: UpstreamModel, size: dict[str, Any], bert: Path, work: Path) -> str:
    """Register our config at `size` (text tower: the tiny BERT) and return its name."""
    cfg = get_model_config(model.ours).to_dict()
    cfg["vision"].update(size)
    cfg["vision"]["drop_path"] = 0.0  # upstream is built without drop path here: same work in the timing
    cfg["text"].update({"model_dir": str(bert), "context_length": 32})
    name = f"bench-{model.ours}"
    path = work / f"{name}.json"
    path.write_text(json.dumps(cfg))
    add_model_config(path)
    return name


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    a, b = a.double().flatten(0, -2), b.double().flatten(0, -2)
    return float((a - b).abs().max()), float(F.cosine_similarity(a, b, dim=-1).min())


def upstream_input(x: torch.Tensor) -> torch.Tensor:
    """What upstream's loaders feed: [0, 1] scans normalised with the mean of timm's ImageNet mean / std."""
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    mean, std = torch.as_tensor(IMAGENET_DEFAULT_MEAN).mean(), torch.as_tensor(IMAGENET_DEFAULT_STD).mean()
    return (x - mean) / std


def one_by_one(module: Any, x: torch.Tensor) -> torch.Tensor:
    """Upstream's outputs, one study at a time, as its evaluation runs: its v1 code draws the scan-index rows at
    random whenever a batch holds more than one study (`resample_1d_posemb(..., is_train=bs != 1)`), in eval mode
    too, so a batch of 2 would compare against a random draw."""
    return torch.cat([module(x[i : i + 1]) for i in range(x.shape[0])])


def fwd_bwd_ms(fn: Any, params: list[torch.Tensor], x: torch.Tensor, repeats: int, dtype: torch.dtype) -> float:
    times = []
    for i in range(repeats + 1):
        for p in params:
            p.grad = None
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = fn(x)
        out.float().square().mean().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i:  # the first run warms up
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_model(model: UpstreamModel, args: argparse.Namespace, bert: Path, work: Path) -> tuple[list[str], str]:
    from typer.testing import CliRunner

    from hlip.cli.main import app
    from hlip.models.export import load_model
    from hlip.models.text import Tokenizer

    device = torch.device(args.device)  # parity in fp32 on the device (TF32 off), then the speed table
    size = reduced_size(model, args.full)
    clip, cfg = build_upstream(model, size, bert, work, args.full)
    perturb(clip, seed=len(model.name))
    out = work / model.name
    out.mkdir()
    formats = save_formats(clip, cfg, bert, out)
    name = our_config(model, size, bert, work)
    tokens = Tokenizer(str(bert), 32)(["no acute finding in the brain", "mass with edema on the left"])
    rows, imported = [], {}
    for fmt in args.formats:
        path, extra = formats[fmt]
        dest = out / f"ours-{fmt}"
        result = CliRunner().invoke(app, ["model", "import", str(path), "--model", name, "--out", str(dest), *extra])
        if result.exit_code != 0:
            rows.append(f"| {model.name} | {fmt} | import failed: {result.output.strip().splitlines()[-1]} |")
            continue
        imported[fmt] = load_model(dest).to(device)
    clip.to(device)
    tokens = tokens.to(device)
    gen = torch.Generator().manual_seed(0)
    chest = "2744" in model.name
    for scans in [1] if chest else args.scans:
        x = torch.rand(args.batch, scans, 1, *size["image_size"], generator=gen).to(device)
        with torch.no_grad():  # [B, R, E] (2026 code), [B, E] (v1 code)
            reference = one_by_one(clip.visual, upstream_input(x))
            trunk_ref = one_by_one(clip.visual.trunk, upstream_input(x))
            text_ref = clip.encode_text(tokens)
        reference = reference if reference.dim() == 3 else reference[:, None]
        trunk_ref = trunk_ref if trunk_ref.dim() == 3 else trunk_ref[:, None]
        for fmt, ours in imported.items():
            with torch.no_grad():
                if fmt == "timm_trunk":  # no projection in a trunk: compare the pooled features
                    diff, cos = compare(ours.visual.forward_feature_rows(x), trunk_ref)
                else:
                    diff, cos = compare(ours.visual.forward_rows(x), reference)
                text = "" if fmt == "timm_trunk" else f"{compare(ours.encode_text(tokens), text_ref)[0]:.1e}"
            rows.append(f"| {model.name} | {fmt} | {scans} | {args.batch} | {diff:.1e} | {cos:.6f} | {text} |")
    speed = ""
    if imported:
        ours = next(iter(imported.values())).train()
        clip.visual.train()
        x = torch.rand(args.batch, 1 if chest else args.speed_scans, 1, *size["image_size"]).to(device)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
        t_ours = fwd_bwd_ms(ours.visual.forward_rows, list(ours.visual.parameters()), x, args.repeats, dtype)
        t_up = fwd_bwd_ms(
            lambda v: clip.visual(upstream_input(v)), list(clip.visual.parameters()), x, args.repeats, dtype
        )
        speed = f"| {model.name} | {x.shape[1]} | {args.batch} | {t_ours:.0f} | {t_up:.0f} | {t_up / t_ours:.2f} |"
    return rows, speed


def mae_parity(model: UpstreamModel, full: bool) -> str:
    """Our 2D->3D initialisation (`hlip.models.mae_init`) vs upstream's checkpoint filter on a random 2D ViT."""
    from hlip.models.mae_init import init_from_2d_vit
    from hlip.models.visual import VisionTransformer3D

    size = reduced_size(model, full)
    C = size["width"]
    gen = torch.Generator().manual_seed(1)
    state = {
        "cls_token": torch.randn(1, 1, C, generator=gen),
        "pos_embed": torch.randn(1, 1 + 14 * 14, C, generator=gen),
        "patch_embed.proj.weight": torch.randn(C, 3, 16, 16, generator=gen),
        "patch_embed.proj.bias": torch.randn(C, generator=gen),
    }
    upstream_fn = getattr(sys.modules["upstream_hlip.visual_encoder"], model.name)
    kwargs = {"embed_dim": C, "num_heads": size["heads"], "img_size": tuple(size["image_size"])}
    trunk = upstream_fn(pretrained=False, pretrained_cfg_overlay=None, **kwargs)
    converted = sys.modules["upstream_hlip.visual_encoder"].custom_checkpoint_filter_fn(
        dict(state), trunk, patch_size=trunk.patch_embed.proj.kernel_size
    )
    cfg = get_model_config(model.ours, {"vision": {**size, "depth": 1, "levels": ["scan"]}})
    ours = VisionTransformer3D(cfg.vision, cfg.embed_dim)
    state.update({k: v for k, v in ours.state_dict().items() if k.startswith(("blocks.", "norm."))})
    init_from_2d_vit(ours, state)
    pairs = {
        "spatial table": (ours.pos_embed.spatial, converted["spatial_posemb"]),
        "patch kernel": (ours.patch_embed.proj.weight, converted["patch_embed.proj.weight"]),
        "cls token": (ours.cls_token, converted["cls_token"]),
    }
    diffs = ", ".join(f"{k} {float((a - b).abs().max()):.1e}" for k, (a, b) in pairs.items())
    return f"| {model.name} | {tuple(trunk.patch_embed.proj.kernel_size)} | {trunk.patch_embed.grid_size} | {diffs} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", type=Path, required=True, help="Checkout of github.com/Zch0414/hlip")
    parser.add_argument("--pkgs", type=Path, required=True, help="Folder with timm and open_clip (pip --target)")
    parser.add_argument("--tvstub", type=Path, default=None, help="torchvision stand-in (no CPU torchvision here)")
    parser.add_argument("--models", nargs="*", default=[m.name for m in UPSTREAM_MODELS])
    parser.add_argument("--formats", nargs="*", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--scans", nargs="*", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="Real widths and scan sizes (GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--speed-scans", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mae-only", action="store_true", help="Only the MAE-initialisation comparison")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity means fp32 matmuls on a GPU too
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    load_upstream(args.upstream, args.pkgs, args.tvstub)
    from testkit.tiny_bert import write_tiny_bert

    parity = ["| upstream model | format | scans | batch | max abs diff | min cosine | text max abs diff |"]
    parity.append("|---|---|---:|---:|---:|---:|---:|")
    speed = [f"| upstream model | scans | batch | ours fwd+bwd ms | upstream ms | upstream / ours ({args.dtype}) |"]
    speed.append("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bert = write_tiny_bert(work / "bert")
        for model in UPSTREAM_MODELS:
            if model.name in args.models and not args.mae_only:
                try:
                    rows, line = run_model(model, args, bert, work)
                except Exception as err:  # one model failing (e.g. upstream's build) is a row, not the end
                    rows, line = [f"| {model.name} | upstream build or run failed: {type(err).__name__} {err} |"], ""
                parity += rows
                speed += [line] if line else []
                print("\n".join([*rows, line]), file=sys.stderr, flush=True)  # progress: rows as they come
    mae = [
        "| upstream model | patch | grid | max abs diff, ours vs upstream's filter (14x14 MAE table, 16x16 kernel) |"
    ]
    mae.append("|---|---|---|---|")
    for model in UPSTREAM_MODELS:
        if model.name in args.models and model.release == "2026":
            mae.append(mae_parity(model, args.full))
    size = "real sizes" if args.full else "reduced widths and scan sizes (--reduced: see REDUCED)"
    print(f"\nParity ({size}, {args.device}, fp32 outputs, random perturbed weights)\n")
    print("\n".join(parity))
    print(f"\nVision tower forward+backward, median of {args.repeats} ({args.device}, {args.dtype})\n")
    print("\n".join(speed))
    print("\nImageNet-MAE initialisation (pretrain.init) vs upstream's custom_checkpoint_filter_fn\n")
    print("\n".join(mae))


if __name__ == "__main__":
    main()
