"""The served model: an MLflow pyfunc that takes DICOM studies (or their ingested scans) and returns findings.

```python
import mlflow
model = mlflow.pyfunc.load_model("models:/hlip-demo@champion")
out = model.predict(pd.DataFrame({"study_archive": [base64_of_a_zip_of_the_study_s_dicom_files]}))
# out: one row per input row: a probability column per finding, `embedding` (list of floats, the normalised
# study embedding [embed_dim]), `n_scans`, `quarantine` (JSON {reason: count}) and `error` ("" when fine)
```

What a request may name is the deployment's decision, checked before any work (`hlip.serving`): a row sends its
study as `study_archive` (a zip or tar of its DICOM files, base64, size-bounded, extracted safely into a private
work folder removed afterwards), or names it as `study_path` (a folder or `s3://` prefix) or `scan_paths` under an
allowed root (`$HLIP_SERVE_ROOTS` and/or the model config's `serving.roots`; none by default, so paths are
refused). Files per study, bytes and decoded voxels (from the headers) are bounded; a row over a limit or outside
the roots gets a refusal in `error` that names no server path, and null probabilities (answers hold no NaN).

Artifacts of the logged model (everything needed offline, nothing fetched from a hub):
- `model/`: the exported folder of `hlip.models.export.save_model` (`model.safetensors` + `config.json`);
- `text_model/`: the text tower's configuration and tokenizer files (its weights are in `model.safetensors`);
- `prompts.yaml`: the served prompt set in evaluation's format (`hlip.evaluation.prompts`): templates and, per
  finding, positive and negative phrasings;
- `ingest.yaml`: the `IngestConfig` of training, so a DICOM study goes through the same ingest code; its
  preprocessing equals the model's study contract (`metadata["contract"]` of `model/config.json`), checked at
  logging and at loading.

A row with `study_path` (a folder, or an `s3://` prefix) runs the project's own `hlip.data.ingest.ingest` on it
(in a temporary folder, deleted afterwards; keys from `HLIP_DEID_KEY` as in training, so scans come in the same
canonical order) and picks its scans with the model's study contract (`StudyContract.select`, the rule training
and evaluation use); a row with `scan_paths` reads already ingested and chosen uint8 `.npy` volumes `[D, H, W]` in
the given order (at most the contract's `max_scans`). Scans are scaled to [0, 1] and encoded as one study. The code
of the `hlip` package travels with the model (`code/`).
Zero-shot probability of a finding: softmax over (negative, positive) of `logit_scale * cos(study, prompt)`,
where each prompt embedding is the normalised mean of its templated texts (computed once in `load_context`):
evaluation's own `ensemble_embedding` and `pair_scores`, so a served probability equals the evaluated one.
A row that is refused or cannot be read gets null probabilities, an empty embedding and the reason in `error`
(`<code>: <why>` for refusals): one bad study never fails the batch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import yaml
from mlflow.pyfunc.model import PythonModel

from hlip.config import to_dict
from hlip.data.config import IngestConfig
from hlip.data.contract import StudyContract
from hlip.data.sampling import select_scans
from hlip.evaluation.prompts import PromptError, PromptSet, load_prompt_set, parse_prompt_set
from hlip.evaluation.zero_shot import ensemble_embedding, pair_scores
from hlip.serving.policy import RequestError, ServingPolicy
from hlip.serving.request import INPUTS, json_safe, open_request, public_message, work_folder

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo
    from mlflow.models.signature import ModelSignature

    from hlip.models.clip import HLIP
    from hlip.models.config import ModelConfig

log = logging.getLogger(__name__)

MODEL, TEXT_MODEL, PROMPTS, INGEST = "model", "text_model", "prompts.yaml", "ingest.yaml"
ENTRY = "hlip_study_model.py"
ENTRY_CODE = (
    '"""MLflow models-from-code entry of the HLIP study model (hlip/tracking/pyfunc.py)."""\n\n'
    "import mlflow\n\nfrom hlip.tracking.pyfunc import HLIPStudyModel\n\nmlflow.models.set_model(HLIPStudyModel())\n"
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ot", ".ckpt")
# Runtime packages of the served model, pinned to the versions installed here (the `hlip` code travels with the
# model as code_paths). Given explicitly: inferring them costs 3-7 s per log_model, a given list 50 ms.
# The DICOM decoder plugins are runtime too: a served study may be JPEG Lossless, JPEG-LS or JPEG 2000. nibabel:
# preprocessing reorients with it (MONAI, listed here before, is no longer imported; it had needed nibabel too).
RUNTIME_PACKAGES = ("mlflow", "torch", "numpy", "pandas", "pyarrow", "pydicom", "nibabel", "einops", "transformers",
                    "safetensors", "tokenizers", "pyyaml", "scipy", "pylibjpeg", "pylibjpeg-libjpeg",
                    "pylibjpeg-openjpeg", "pylibjpeg-rle", "pyjpegls", "python-gdcm")  # fmt: skip


def load_prompts(prompts: PromptSet | Mapping[str, Any] | str | Path) -> PromptSet:
    """The served prompt set, in evaluation's format (`hlip.evaluation.prompts`): a shipped set's name, a YAML
    path, a parsed set or its mapping. Serving and evaluation then read, ensemble and score prompts with the same
    code.

    Raises:
        PromptError: A malformed set, no `findings`, or a finding without a negative phrasing (a served finding
            is a probability: softmax over its negative and positive prompts).
    """
    if isinstance(prompts, PromptSet):
        prompt_set = prompts
    elif isinstance(prompts, Mapping):
        prompt_set = parse_prompt_set(prompts, where="served prompt set", default_name="served")
    else:
        prompt_set = load_prompt_set(prompts)
    if not prompt_set.findings:
        raise PromptError(f"prompt set {prompt_set.name}: serving needs 'findings' (negative/positive prompts)")
    unpaired = [name for name, f in prompt_set.findings.items() if not f.negative]
    if unpaired:
        raise PromptError(
            f"prompt set {prompt_set.name}: served findings are probabilities over (negative, positive); "
            f"{unpaired} have no negative phrasing"
        )
    return prompt_set


class HLIPStudyModel(PythonModel):
    """pyfunc model: DICOM study folders or ingested scans in, finding probabilities and embeddings out."""

    def load_context(self, context: Any) -> None:
        """Rebuild the model offline from the artifacts and embed the prompts once."""
        import torch

        art = context.artifacts
        self.model = load_served_model(Path(art[MODEL]), Path(art[TEXT_MODEL]))
        self.prompts = load_prompts(art[PROMPTS])
        self.findings = list(self.prompts.findings)
        self.contract = StudyContract.of_model(art[MODEL])
        self.policy = ServingPolicy.from_config((context.model_config or {}).get("serving"))
        self.ingest_config = IngestConfig.from_dict(yaml.safe_load(Path(art[INGEST]).read_text()))
        self.contract.require_preprocess(self.ingest_config.preprocess, "the served ingest settings")
        with torch.no_grad():
            self.negative, self.positive = embed_prompts(self.model, self.prompts)  # [F, E] each
            self.logit_scale = float(self.model.logit_scale.exp().clamp(max=100.0))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One output row per input row (see the module docstring for the columns)."""
        frame = pd.DataFrame(model_input)
        if not any(column in frame for column in INPUTS):
            raise ValueError(f"model input needs one of the columns {', '.join(INPUTS)}")
        rows = [self._predict_row({str(k): v for k, v in row.items()}) for row in frame.to_dict("records")]
        columns = [*self.findings, "embedding", "n_scans", "quarantine", "error"]
        return json_safe(pd.DataFrame(rows, columns=columns))  # missing values are null, never NaN

    def _predict_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = dict.fromkeys(self.findings)
        out.update(embedding=[], n_scans=0, quarantine="{}", error="")
        try:
            with work_folder(self.policy) as work:
                request = open_request(row, self.policy, work)  # refusals before any work (hlip.serving)
                try:
                    if request.source:
                        scans, reasons = ingest_one_study(request.source, work / "ingest", self.ingest_config)
                        out["quarantine"] = json.dumps(dict(sorted(reasons.items())))
                        volumes = [np.load(p) for p in chosen_paths(scans, self.contract)]
                    else:
                        given = list(request.scan_paths)
                        chosen = select_scans(list(range(len(given))), self.contract.scans, None)
                        volumes = [np.load(given[i]) for i in chosen]
                    probs, embedding = self.predict_volumes(volumes)
                except (ValueError, OSError) as exc:
                    raise ValueError(public_message(exc, work, request.source, *self.policy.roots)) from exc
        except (RequestError, ValueError) as exc:
            out["error"] = str(exc)
            return out
        out.update(probs, embedding=embedding, n_scans=len(volumes))
        return out

    def predict_volumes(self, volumes: Sequence[np.ndarray]) -> tuple[dict[str, float], list[float]]:
        """Finding probabilities and the normalised study embedding of one study's uint8 scans `[D, H, W]`."""
        import torch

        shapes = {v.shape for v in volumes}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"scans of a study must be 3D volumes of one shape, got {sorted(shapes)}")
        dtypes = {str(v.dtype) for v in volumes}
        if dtypes != {"uint8"}:
            raise ValueError(f"scans of a study must be uint8 volumes (what ingest writes), got {sorted(dtypes)}")
        image = torch.from_numpy(np.stack(volumes))  # [N, D, H, W] uint8; the model scales it
        with torch.no_grad():
            z = self.model.encode_image(image[None, :, None], normalize=True).float().numpy()  # [1, E]
        present = pair_scores(z, self.negative, self.positive, self.logit_scale)[0]  # [F], as evaluation scores
        probs = {name: float(p) for name, p in zip(self.findings, present, strict=True)}
        return probs, [float(v) for v in z[0]]


def chosen_paths(scans: Sequence[Mapping[str, Any]], contract: StudyContract) -> list[str]:
    """Volume paths of the scans the model sees, in stacking order: `contract.select` over the study's ingested
    scan rows (`kind`, `plane`, `scan_key`, `path`), as training's dataset and evaluation's adapters choose.

    Raises:
        ValueError: No usable scan (none ingested, or none of the contract's kinds).
    """
    if not scans:
        raise ValueError("no usable scan in the study")
    order = contract.select([s["kind"] for s in scans], [s["plane"] for s in scans], [s["scan_key"] for s in scans])
    return [str(scans[i]["path"]) for i in order]


def ingest_one_study(study: str, work: Path, config: IngestConfig) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Run the training ingest on one study folder; return its scan rows (`path` made absolute; maybe none) and
    the quarantine reason counts.

    Raises:
        ValueError: The folder is missing, or holds no DICOM study or several.
    """
    from hlip.data import manifest
    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest

    if "://" not in study and not Path(study).is_dir():  # s3://bucket/prefix goes to the ingest source as is
        raise ValueError(f"study_path is not a folder: {Path(study).name}")
    config = dataclasses.replace(config, workers=1, dask_scheduler=None)
    ingest(study, work, config=config, key=HashKey.from_env(config.deid.key_env))
    studies = manifest.read_table(work, "studies")
    reasons = Counter(str(q["reason"]) for q in manifest.read_table(work, "quarantine"))
    if len(studies) != 1:
        raise ValueError(f"study_path must hold exactly one DICOM study, found {len(studies)} ({dict(reasons)})")
    scans = [{**s, "path": str(work / s["path"])} for s in manifest.read_table(work, "scans")]
    return scans, reasons


def load_served_model(model_dir: Path, text_dir: Path) -> HLIP:
    """An exported model rebuilt with its text tower's files from `text_dir` (weights from the export)."""
    from hlip.models.clip import HLIP
    from hlip.models.export import WEIGHTS, load_exact, read_export
    from hlip.models.weights import load_state_dict_file

    cfg, _ = read_export(model_dir)
    cfg = dataclasses.replace(cfg, text=dataclasses.replace(cfg.text, model_dir=str(text_dir)))
    model = HLIP(cfg, pretrained_text=False)
    load_exact(model, load_state_dict_file(model_dir / WEIGHTS))
    return model.eval()


def embed_prompts(model: HLIP, prompts: PromptSet) -> tuple[np.ndarray, np.ndarray]:
    """Template-ensembled negative and positive prompt embeddings `[F, E]` of every finding (normalised), with
    evaluation's `ensemble_embedding`."""
    import torch

    from hlip.evaluation.embeddings import embed_texts
    from hlip.models.text import Tokenizer

    tokenizer = Tokenizer.from_config(model.cfg.text)

    def encode(texts: Sequence[str]) -> np.ndarray:
        return embed_texts(model, tokenizer, torch.device("cpu"), texts)

    findings = list(prompts.findings.values())
    negative = np.stack([ensemble_embedding(encode, prompts, f.negative) for f in findings])
    positive = np.stack([ensemble_embedding(encode, prompts, f.positive) for f in findings])
    return negative, positive


def signature(findings: Sequence[str]) -> ModelSignature:
    """Input: one of `study_archive` (base64 zip or tar of a study's DICOM files), `study_path` (string) or
    `scan_paths` (list of strings) per row, each optional as a column; output: see the module (probabilities are
    null on a refused or unreadable row)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    inputs = Schema([ColSpec(DataType.string, "study_archive", required=False),
                     ColSpec(DataType.string, "study_path", required=False),
                     ColSpec(Array(DataType.string), "scan_paths", required=False)])  # fmt: skip
    outputs = Schema([*(ColSpec(DataType.double, f) for f in findings), ColSpec(Array(DataType.double), "embedding"),
                      ColSpec(DataType.long, "n_scans"), ColSpec(DataType.string, "quarantine"),
                      ColSpec(DataType.string, "error")])  # fmt: skip
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    """The runtime packages pinned to their installed versions."""
    pins = []
    for name in RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            log.warning("package %s is not installed: left out of the model's requirements", name)
    return pins


@dataclass(frozen=True)
class ServingSpec:
    """What the served model is made of, resolved once (logging and the model card both read it).

    Attributes:
        model_dir: Exported model folder.
        model: Its architecture.
        metadata: Its export metadata.
        prompts: Prompt set; its findings are the output columns, in order.
        ingest: Ingest settings of training (its preprocessing is the contract's).
        contract: The model's study contract (preprocessing and scan choice), from its export.
    """

    model_dir: Path
    model: ModelConfig
    metadata: dict[str, Any]
    prompts: PromptSet
    ingest: IngestConfig
    contract: StudyContract

    @property
    def findings(self) -> list[str]:
        """The served findings (output columns), in the prompt set's order."""
        return list(self.prompts.findings)

    @classmethod
    def resolve(
        cls, model_dir: str | Path, prompts: Mapping[str, Any] | str | Path, ingest: IngestConfig | None = None
    ) -> ServingSpec:
        """Resolve the spec of an exported model: its study contract comes from the export only.

        Args:
            model_dir: The exported model folder (carries `metadata["contract"]`).
            prompts: The served prompt set.
            ingest: Ingest settings for DICOM studies (series rules, de-identification); default: the library's
                with the contract's preprocessing. Its preprocessing must equal the contract's.

        Raises:
            ContractError: The export has no contract, or `ingest` preprocesses differently (both values named).
        """
        from hlip.models.export import read_export

        cfg, meta = read_export(model_dir)
        contract = StudyContract.of_model(model_dir)
        if ingest is None:
            ingest = IngestConfig(preprocess=contract.preprocess)
        contract.require_preprocess(ingest.preprocess, "params.yaml:ingest.preprocess")
        return cls(Path(model_dir), cfg, meta, load_prompts(prompts), ingest, contract)


def log_study_model(spec: ServingSpec, *, name: str = "model") -> ModelInfo:
    """Log the pyfunc study model of `spec` in the active MLflow run; returns MLflow's `ModelInfo`."""
    from hlip.models.text import resolve_model_dir
    from hlip.serving.example import example_request

    with tempfile.TemporaryDirectory(prefix="hlip-pyfunc-") as tmp:
        staged = Path(tmp)
        text_dir = _copy_text_files(resolve_model_dir(spec.model.text.model_dir), staged / TEXT_MODEL)
        (staged / PROMPTS).write_text(yaml.safe_dump(spec.prompts.to_doc(), sort_keys=False))
        (staged / INGEST).write_text(yaml.safe_dump(to_dict(spec.ingest), sort_keys=False))
        (staged / ENTRY).write_text(ENTRY_CODE)
        example = pd.DataFrame(example_request())  # a synthetic study as a zip: MLflow predicts it at logging
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(staged / ENTRY),  # models from code: no pickled object in the artifact
            artifacts={
                MODEL: str(spec.model_dir),
                TEXT_MODEL: str(text_dir),
                PROMPTS: str(staged / PROMPTS),
                INGEST: str(staged / INGEST),
            },
            code_paths=[str(_copy_code(staged / "code"))],  # the hlip package: serve the same code
            # the deployment's serving policy; a loader may add roots: load_model(uri, model_config={"serving": ...})
            model_config={"serving": {"roots": []}},
            signature=signature(list(spec.findings)),
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={"findings": list(spec.findings), "embed_dim": spec.model.embed_dim},
        )


def _copy_code(dest: Path) -> Path:
    """A copy of the `hlip` package (the library only: the demo corpus generator, the local server stack and the
    test fixtures live outside it) to ship with the model, without byte code."""
    package = Path(__file__).resolve().parents[1]

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n == "__pycache__" or n.endswith(".pyc")}

    return Path(shutil.copytree(package, dest / "hlip", ignore=ignore))


def _copy_text_files(source: Path, dest: Path) -> Path:
    """Copy a text model directory's config and tokenizer files (top level only, no weight files)."""
    dest.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and not f.name.startswith("."):
            shutil.copy2(f, dest / f.name)
    return dest
