"""HLIP model library: hierarchical-attention 3D ViT, BERT text tower, CLIP model, losses, named configs.

```python
from hlip.models import create_model, create_tokenizer, create_loss

model = create_model("hlip-demo")            # configs/hlip-demo.json
tokenizer = create_tokenizer("hlip-demo")
out = model(image, tokenizer(reports), scan_mask=scan_mask)   # image [B, N, 1, D, H, W], scan_mask [B, N]
loss = create_loss("clip")(**out)
```

`transformers` is imported only when a text tower or tokenizer is built.
"""

from hlip.models.clip import HLIP, HLIPClassifier
from hlip.models.compile import compile_model
from hlip.models.config import ModelConfig, TextConfig, VisionConfig
from hlip.models.factory import (
    add_model_config,
    create_classifier,
    create_model,
    create_tokenizer,
    get_model_config,
    list_models,
)
from hlip.models.flops import vision_forward_flops
from hlip.models.loss import ClipLoss, MultiLabelBCELoss, SigLipLoss, create_loss
from hlip.models.packing import StudyPacking, fixed_scan_count
from hlip.models.text import TextTower, Tokenizer
from hlip.models.upstream import ImportReport, WeightMismatchError, import_upstream_weights
from hlip.models.visual import VisionTransformer3D
from hlip.models.weights import load_state_dict_file, save_safetensors

__all__ = [
    "HLIP",
    "ClipLoss",
    "HLIPClassifier",
    "ImportReport",
    "ModelConfig",
    "MultiLabelBCELoss",
    "SigLipLoss",
    "StudyPacking",
    "TextConfig",
    "TextTower",
    "Tokenizer",
    "VisionConfig",
    "VisionTransformer3D",
    "WeightMismatchError",
    "add_model_config",
    "compile_model",
    "create_classifier",
    "create_loss",
    "create_model",
    "create_tokenizer",
    "fixed_scan_count",
    "get_model_config",
    "import_upstream_weights",
    "list_models",
    "load_state_dict_file",
    "save_safetensors",
    "vision_forward_flops",
]
