"""The production toxicity backend: Detoxify (unitary's transformer classifiers).

Variants: ``original`` (BERT, Jigsaw 2018: toxicity, severe_toxicity, obscene, threat,
insult, identity_attack), ``unbiased`` (RoBERTa, adds sexual_explicit) and
``multilingual`` (XLM-R). The checkpoint is always a local file
(``toxicity.detoxify_checkpoint``): Vigil never downloads at run time. Fetch it once where
a network exists (Detoxify's release assets, e.g. ``toxic_original-c1212f89.ckpt``) and
ship it with the deployment.

Offline, Detoxify also needs the base model's config and tokenizer: either in the local
Hugging Face cache, or in a directory given as ``toxicity.detoxify_hf_config`` (Detoxify's
``huggingface_config_path``). The checkpoint's own config names the architecture, so it,
not ``detoxify_variant``, decides what is loaded; the variant names it in versions.

A checkpoint is a pickle (``torch.load(weights_only=False)`` inside Detoxify): only point
this setting at files you trust. Texts longer than the model's 512 tokens are scored on
their first 512 tokens.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monitor.config import ToxicitySettings
from monitor.errors import ConfigError

NAME = "detoxify"


def _file_tag(path: Path) -> str:
    # Size and mtime, not a hash of a ~500 MB file: enough to tell checkpoints apart in
    # scorer versions without reading the whole file at start-up.
    stat = path.stat()
    key = f"{path.name}:{stat.st_size}:{int(stat.st_mtime)}".encode()
    return hashlib.blake2b(key, digest_size=4).hexdigest()


class DetoxifyBackend:
    """A local Detoxify checkpoint behind the toxicity backend interface."""

    name = NAME

    def __init__(self, settings: ToxicitySettings) -> None:
        if not settings.detoxify_checkpoint:
            raise ConfigError(
                "toxicity.detoxify_checkpoint is required for backend 'detoxify' "
                "(a local .ckpt file; Vigil does not download models at run time)"
            )
        checkpoint = Path(settings.detoxify_checkpoint).expanduser()
        if not checkpoint.is_file():
            raise ConfigError(f"toxicity.detoxify_checkpoint: no file at {checkpoint}")
        hf_config = settings.detoxify_hf_config
        if hf_config and not Path(hf_config).expanduser().is_dir():
            raise ConfigError(f"toxicity.detoxify_hf_config: no directory at {hf_config}")
        from detoxify import Detoxify

        self._model: Any = Detoxify(
            model_type=settings.detoxify_variant,
            checkpoint=str(checkpoint),
            device=settings.device,
            huggingface_config_path=str(Path(hf_config).expanduser()) if hf_config else None,
        )
        self.categories: tuple[str, ...] = tuple(self._model.class_names)
        self.version = f"{NAME}-{settings.detoxify_variant}-{_file_tag(checkpoint)}"

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Per-category probabilities, shape (len(texts), len(categories))."""
        if not texts:
            return np.zeros((0, len(self.categories)))
        out: dict[str, Any] = self._model.predict(list(texts))
        # Detoxify squeezes a batch of one down to plain floats; make every column a list.
        columns = [np.atleast_1d(np.asarray(out[c], dtype=np.float64)) for c in self.categories]
        return np.stack(columns, axis=1)
