"""What the GLUE stage fine-tunes: a cell's exported model, any Hugging Face checkpoint (a folder, or a Hub
id when online), or `random`: the cell's architecture and tokenizer with untrained weights, the baseline
that shows what pretraining bought."""

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ablations.config import ConfigError
from ablations.hub import probe_hub

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass
class Checkpoint:
    name: str
    tokenizer: object
    model: object  # loaded once; every fine-tuning run starts from a fresh copy
    max_length: int  # the longest input its pretraining trained: fine-tuning inputs are capped to it
    identity: str    # what its weights are (a hash of the files, a Hub commit): stored GLUE results of other weights
                     # under the same name are stale

    def encoder(self):
        """A fresh copy in training mode (from_pretrained returns eval mode, which Lightning would keep)."""
        return copy.deepcopy(self.model).train()


def from_pretrained(source: str, reuse_pooler: bool) -> Checkpoint:
    from transformers import AutoModel, AutoTokenizer

    folder = Path(source).expanduser()
    if folder.exists():
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model.pretrained={source}: not a model folder (no config.json; expected a folder "
                              f"written by save_pretrained, e.g. <cell>/model)")
    elif _HUB_ID.match(source):
        probe_hub(source, "model.pretrained", "offline, point it at a checkpoint folder", repo_type="model")
    else:
        raise ConfigError(f"model.pretrained={source}: no such folder (and not a Hub model id)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        try:  # no pooler unless it is used: it would only be an untrained layer in MLM-only checkpoints
            model = AutoModel.from_pretrained(source, add_pooling_layer=reuse_pooler)
        except TypeError:  # an architecture without a pooler option
            model = AutoModel.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ConfigError(f"model.pretrained={source}: cannot load a model and tokenizer ({err})") from None
    return Checkpoint(str(source), tokenizer, model, _trained_length(model.config, tokenizer),
                      _weights_sha(folder) if folder.exists() else f"hub:{getattr(model.config, '_commit_hash', None)}")


def _weights_sha(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _trained_length(config, tokenizer) -> int:
    """Ours record their pretraining seq_len; for others the tokenizer's limit (RoBERTa: 512 of 514 positions)."""
    declared = getattr(config, "pretraining_seq_len", None)
    if declared:
        return declared
    limit = tokenizer.model_max_length  # a huge sentinel when the tokenizer does not say
    return limit if limit < 100_000 else config.max_position_embeddings


def random_init(model_cfg: dict, tokenizer, reuse_pooler: bool, seq_len: int) -> Checkpoint:
    """Untrained weights, capped at the arm's seq_len like the pretrained checkpoints they are a baseline for. The
    pooler is always built and then dropped where unused: building it draws random numbers, and the encoder must
    not depend on a GLUE setting (reading comprehension keys its results without it)."""
    from transformers import BertModel

    from lightning_modules.pretrain import bert_config

    model = BertModel(bert_config(model_cfg, len(tokenizer), tokenizer.pad_token_id), add_pooling_layer=True)
    if not reuse_pooler:
        model.pooler = None
    return Checkpoint("random", tokenizer, model, seq_len, "random")
