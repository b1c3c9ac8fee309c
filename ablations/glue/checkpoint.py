"""What the GLUE stage fine-tunes: a cell's exported model, any Hugging Face checkpoint (a folder, or a Hub
id when online), or `random`: the cell's architecture and tokenizer with untrained weights, the baseline
that shows what pretraining bought."""

import copy
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
    return Checkpoint(str(source), tokenizer, model)


def random_init(model_cfg: dict, tokenizer, reuse_pooler: bool) -> Checkpoint:
    from transformers import BertModel

    from lightning_modules.pretrain import bert_config

    config = bert_config(model_cfg, len(tokenizer), tokenizer.pad_token_id)
    return Checkpoint("random", tokenizer, BertModel(config, add_pooling_layer=reuse_pooler))
