"""Tokenizers trained on the training corpus with the `tokenizers` library: byte-level BPE (RoBERTa) or
WordPiece (BERT). Special tokens take the first ids, so `id < num_special` marks a token masking must skip.

Both use BERT's pair layout ([CLS] A [SEP] B [SEP] with segment ids 0/1) so input formats are built
identically whatever the tokenizer; the post-processor makes the saved tokenizer produce the same layout.
"""

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIALS = {
    "bpe": {"cls_token": "<s>", "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>",
            "mask_token": "<mask>"},
    "wordpiece": {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"},
}


def train(kind: str, texts: Iterable[str], vocab_size: int, min_frequency: int) -> PreTrainedTokenizerFast:
    specials = SPECIALS[kind]
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(specials.values()),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.WordPiece(unk_token=specials["unk_token"]))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=list(specials.values()))
    tok.train_from_iterator(texts, trainer)
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=["input_ids", "token_type_ids",
                                                                            "attention_mask"], **specials)


def num_special(tokenizer: PreTrainedTokenizerFast) -> int:
    ids = sorted(tokenizer.all_special_ids)
    assert ids == list(range(len(ids))), f"special tokens must take the first ids, got {ids}"
    return len(ids)
