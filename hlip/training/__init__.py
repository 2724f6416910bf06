"""Training: config, loop, optimiser/schedule, checkpoints, distributed setup and the pre-training driver.

```python
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain

result = run_pretrain(PretrainConfig.from_params(block), evaluator=..., report=..., logger=...)
```

Modules are imported directly (`hlip.training.pretrain` pulls in torch and the models), so importing this
package stays cheap.
"""
