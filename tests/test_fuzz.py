"""Config fuzzing: random combinations of every group's options with random in- and out-of-range values. Each
either composes and passes a dry run (the plan, the data, the cost), or is refused with the short error run.py
prints; never any other exception (run.py would print a traceback)."""

import random

import pytest
from hydra.errors import ConfigCompositionException

from ablations.config import ConfigError
from ablations.grid import dry_run
from conftest import make_cfg

COMBINATIONS = 200
GROUPS = {"objective": ["mlm", "mlm_nsp"], "masking": ["static", "dynamic"],
          "input_format": ["segment_pair", "sentence_pair", "full_sentences", "doc_sentences"],
          "schedule": ["bsz256", "bsz2k", "bsz8k"], "model": ["tiny", "mini", "base"], "tokenizer": ["bpe", "wordpiece"],
          "trainer": ["cpu", "gpu", "ddp"], "scale": ["cpu_smoke", "cpu_real", "single_gpu_day", "paper"],
          "arm": ["segment_pair_nsp", "sentence_pair_nsp", "full_sentences", "doc_sentences", "bert_style",
                  "roberta_style"]}
VALUES = {  # key: (values a cell may have, values it must refuse)
    "masking.mlm_probability": ([0.15, 0.3], [-0.1, 0, 1, 1.5]), "masking.mask_replace_prob": ([0.8, 0.5], [-1, 0.95, 2]),
    "masking.random_replace_prob": ([0.1, 0.3], [-0.2]), "masking.dupe_factor": ([1, 2, 10], [0, -3, 2.5]),
    "schedule.total_tokens": ([65536, 131072], [0, 100]), "schedule.batch_scale": ([0.03125, 0.125], [0, 0.001, 3]),
    "schedule.lr_scale": ([1, 10], [0, -1]), "schedule.clip_grad_norm": (["null", 1.0], [0, -2]),
    "seq_len": ([32, 64], [4, 1024]), "data.size": (["null", 0.25, 1.0, 5000], [0, 1.5, 10 ** 9]),
    "data.valid_fraction": ([0.05, 0.2], [0, 1]), "trainer.micro_batch_size": ([1, 16, 128], [0]),
    "trainer.devices": ([1, 2], [-1]), "cost.device": (["h100", "a100"], ["tpu9"]), "cost.mfu": (["null", 0.3], []),
}


def combination(rng: random.Random) -> list[str]:
    groups = [f"{g}={rng.choice(o)}" for g, o in GROUPS.items() if rng.random() < 0.4]
    values = [f"{k}={rng.choice(bad if bad and rng.random() < 0.15 else good)}" for k, (good, bad) in VALUES.items()
              if rng.random() < 0.3]
    return [*groups, *values, "data.sources.synthetic.num_documents=20", "logger=none"]


@pytest.mark.slow  # 200 compositions: a matrix for the full suite, not the inner loop
def test_random_configs_pass_a_dry_run_or_get_a_one_line_error(tmp_path, capsys):
    rng = random.Random(20191120)
    outcomes = {"dry run": 0, "refused": 0}
    for _ in range(COMBINATIONS):
        overrides = combination(rng)
        try:
            cfg = make_cfg(*overrides, root=tmp_path)
        except ConfigCompositionException:  # an arm whose groups clash with a chosen group: Hydra's own short error
            outcomes["refused"] += 1
            continue
        try:
            dry_run(cfg)
            outcomes["dry run"] += 1
        except ConfigError as err:
            assert "\n" not in str(err) and len(str(err)) < 400, (overrides, str(err))
            outcomes["refused"] += 1
        except Exception as err:  # noqa: BLE001 - anything else would reach the user as a traceback
            pytest.fail(f"{overrides}: {type(err).__name__}: {err}")
    capsys.readouterr()
    assert min(outcomes.values()) > 20, outcomes  # both paths exercised
