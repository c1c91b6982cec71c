"""The ``onnx`` embedding backend: the local sentence-transformers model as int8 ONNX.

Built from the model's own files, never downloaded: the transformer is exported with
`torch.onnx.export` (the TorchScript exporter: the dynamo one needs onnxscript), fused by
onnxruntime's transformer optimizer (Attention, SkipLayerNormalization, BiasGelu) and its
weights quantized to int8 per channel (`quantize_dynamic`). The result is cached in
``<cache_dir>/<hash of the model files and the recipe>/model-int8.onnx``: built once, at
first use (one log line, a few seconds), shared by every later process. Only the build
imports torch and transformers; a worker that loads a cached export needs onnxruntime
and the ``tokenizers`` package only.

Inference: the model's ``tokenizer.json`` (truncation at its ``max_seq_length``), one
text per onnxruntime call on the CPU, then mean pooling over its tokens and L2
normalisation in numpy: what sentence-transformers does for
all-MiniLM-L6-v2 (``1_Pooling`` with mean tokens, then ``Normalize``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import ConfigError, ScorerError

log = logging.getLogger("vigil.scorers.embeddings")

#: Part of the cache key: bump it when the export recipe below changes.
RECIPE = "torchscript-opset17-fused-int8-per-channel-v1"

#: Model files whose content decides the export (the hash covers these).
_MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json",
                "sentence_bert_config.json", "1_Pooling/config.json")  # fmt: skip

_EXPORT_NAME = "model-int8.onnx"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vigil/onnx``, else ``~/.cache/vigil/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil" / "onnx"


def model_hash(model_dir: Path) -> str:
    """Hash of the model's files and `RECIPE`: a changed model gets a new export."""
    digest = hashlib.sha256(RECIPE.encode())
    for name in _MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def ensure_export(model_dir: Path, cache_dir: Path | None = None) -> Path:
    """The int8 ONNX file of the model in ``model_dir``, exported now if not cached."""
    folder = (cache_dir or default_cache_dir()).expanduser() / model_hash(model_dir)
    target = folder / _EXPORT_NAME
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("exporting the embedding model to int8 ONNX (once per model)",
             extra={"model": str(model_dir), "cache": str(folder)})  # fmt: skip
    # Built in a scratch folder beside the target and renamed into place: two processes
    # exporting at once each write their own file, and a reader never sees half of one.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        fp32, fused, int8 = (Path(tmp) / n for n in ("fp32.onnx", "fused.onnx", "int8.onnx"))
        config = json.loads((model_dir / "config.json").read_text())
        try:
            # The exporter's tracer warnings and the quantizer's per-tensor INFO lines on
            # the root logger say nothing an operator acts on; the two lines here do.
            with warnings.catch_warnings(), _quiet_root_logger():
                warnings.simplefilter("ignore")
                _export_fp32(model_dir, fp32)
                _fuse(fp32, fused, config)
                _quantize(fused, int8)
        except Exception as exc:  # torch / onnx / onnxruntime errors
            raise ScorerError(
                f"ONNX export of {model_dir} failed: {type(exc).__name__}: {exc}"[:500]
            ) from exc
        os.replace(int8, target)
    log.info("embedding model exported to ONNX",
             extra={"path": str(target), "bytes": target.stat().st_size,
                    "export_s": round(time.perf_counter() - started, 1)})  # fmt: skip
    return target


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _export_fp32(model_dir: Path, out: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModel

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    # Eager attention exports as plain MatMul/Softmax, the pattern onnxruntime's optimizer
    # fuses into its Attention operator (the SDPA export is not recognised).
    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation="eager"
    ).eval()

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state  # fmt: skip

    # A padded row in the example, so the trace keeps the attention-mask path.
    ids = torch.tensor([[101, 2023, 2003, 102], [101, 102, 0, 0]])
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
    with torch.no_grad():
        torch.onnx.export(_Hidden(model), (ids, mask, torch.zeros_like(ids)), str(out),
                          input_names=names, output_names=["hidden"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)  # fmt: skip


def _fuse(src: Path, out: Path, config: dict[str, Any]) -> None:
    from onnxruntime.transformers import optimizer

    model = optimizer.optimize_model(
        str(src), model_type="bert", num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]), opt_level=0,
    )  # fmt: skip
    model.save_model_to_file(str(out))


def _quantize(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per channel: per-tensor int8 weights measured cosine 0.96 (min 0.89) against
    # float32 on real prompts, per channel 0.994 (min 0.985).
    quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip


class OnnxEmbedder:
    """The int8 ONNX export of a local model: texts in, L2-normalised float32 rows out."""

    def __init__(
        self,
        model_dir: Path,
        name: str,
        batch_size: int = 64,
        threads: int = 0,
        cache_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        pooling = model_dir / "1_Pooling" / "config.json"
        mean = json.loads(pooling.read_text()).get("pooling_mode_mean_tokens") if (
            pooling.is_file()) else True  # fmt: skip
        if not mean:
            raise ConfigError(f"embedding.backend onnx: {model_dir} does not mean-pool")
        if not (model_dir / "tokenizer.json").is_file():
            raise ConfigError(f"embedding.backend onnx: no tokenizer.json in {model_dir}")
        config = json.loads((model_dir / "config.json").read_text())
        self.dimension = int(config["hidden_size"])
        st_config = model_dir / "sentence_bert_config.json"
        max_tokens = json.loads(st_config.read_text()).get("max_seq_length", 256) if (
            st_config.is_file()) else 256  # fmt: skip
        path = ensure_export(model_dir, cache_dir)
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            # The file's own settings (MiniLM's: truncation and fixed padding at 128) are not
            # sentence-transformers': its max_seq_length; no padding, texts run one by one.
            self.tokenizer.enable_truncation(int(max_tokens))
            self.tokenizer.no_padding()
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads if threads > 0 else _usable_cpus()
            # Spinning threads busy-wait between operators: CPU the event loop and the
            # other scorers on the same cores need, for no measurable gain here.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session: Any = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime / tokenizers load errors
            raise ScorerError(
                f"ONNX embedding model {path} failed to load: {type(exc).__name__}: {exc}"[:500]
            ) from exc
        self.threads = options.intra_op_num_threads
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dimension), unit length, float32. Blocks.

        One text per forward pass: the int8 activations are scaled over the whole input,
        so in a padded batch a text's vector would depend on its neighbours (and padding
        costs time). Measured single-threaded on real prompts: 300 texts/CPU-s one at a
        time, 100 in batches of 64.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        try:
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start : start + self.batch_size])
                for i, encoded in enumerate(self.tokenizer.encode_batch(chunk), start):
                    out[i] = self._forward(encoded.ids)
        except Exception as exc:  # onnxruntime / tokenizer errors for the whole batch
            raise ScorerError(f"ONNX embedding model failed: {type(exc).__name__}") from exc
        return out

    def _forward(self, token_ids: list[int]) -> np.ndarray:
        ids = np.array([token_ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.zeros_like(ids)}  # fmt: skip
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        pooled = hidden[0].mean(axis=0)  # no padding: every token counts
        return np.asarray(pooled / max(float(np.linalg.norm(pooled)), 1e-12), dtype=np.float32)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


__all__ = ["OnnxEmbedder", "default_cache_dir", "ensure_export", "model_hash"]
