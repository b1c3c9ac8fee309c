"""The faults a long grid meets, each injected and its defence checked: two grids started at once on one paths.root,
results.json files cut short or of another schema, damaged caches, a checkpoint of another cell, and W&B failing
(no credentials, no server, errors mid-run) or given a key it must not write down. Each case is detected, then
rebuilt where that is safe or refused with a one-line error naming the file: nothing damaged is silently used.

Most cases run in process on one tiny finished cell (copied per test); only concurrency needs real processes: two
run.py grids, and two plain Python processes asking for one cache."""

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ablations.cell import Cell, read_results
from ablations.config import ConfigError
from ablations.data.cache import _intact
from ablations.data.pipeline import prepare
from ablations.runner import run_cell
from conftest import ROOT, leet, make_cfg, wandb_history

TINY = ["data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "trainer.log_every_steps=2",
        "trainer.threads=1"]
GLUE = ["glue.tasks=[sst2]", "glue.seeds=[1]", "glue.train_size=64", "glue.dev_size=32", "rc.tasks=[]"]
CELL = [*TINY, "stage=pretrain", "masking=static", "logger=none"]  # the finished cell the damage tests start from
# A key W&B would take for a real one: a prefix, a dash, then 40+ word characters (wandb's check_api_key).
KEY = "fake-key-" + ("0123456789abcdef" * 3)[:36]
assert len(KEY.split("-", 1)[1]) == 40


@pytest.fixture(autouse=True)
def info_logs(caplog):
    """The harness logs what it does at INFO (resuming, skipping, building): the tests read those lines."""
    caplog.set_level(logging.INFO, logger="ablations")


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def holding(paths, secret: str) -> list[str]:
    """The files that hold the secret, or its part after the `fake-key-` prefix, in any encoding W&B may write."""
    needles = [s.encode() for s in (secret, secret[9:])]
    return [str(p) for p in paths if any(n in p.read_bytes() for n in needles)]


def temporary(root: Path) -> list[str]:
    """What a build or an atomic write leaves behind when it is not cleaned up."""
    return [str(p) for p in root.rglob("*") if ".tmp-" in p.name]


# -- concurrency: two grids at once on one paths.root ----------------------------------------------------------


@pytest.fixture(scope="module")
def two_grids(tmp_path_factory):
    """The same `python run.py -m masking=static,dynamic` twice, started together on one paths.root, one process a grid
    (trainer.parallel_cells=1): both reach the static cell within their start-up skew, seconds less than the cell
    takes, so one of them must wait for it; then both go on to the dynamic cell. A fake W&B API key is in their
    environment (logger offline), for the key test."""
    base = tmp_path_factory.mktemp("two_grids")
    root = base / "root"
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_API_KEY": KEY, "WANDB_DIR": str(root / "wandb"), "WANDB_CONFIG_DIR": str(root / "wandb-config"),
           "WANDB_CACHE_DIR": str(root / "wandb-cache"), "WANDB_DATA_DIR": str(root / "wandb-data")}
    root.mkdir()
    grids = {}
    for name in ("a", "b"):
        # Output to files, not pipes: a grid blocked on a full pipe while it holds a cell's lock would stall the other.
        with open(base / f"{name}.out", "w") as out, open(base / f"{name}.err", "w") as err:
            grids[name] = subprocess.Popen(
                [sys.executable, str(ROOT / "run.py"), "-m", "masking=static,dynamic", *TINY, "rc.tasks=[]",
                 "stage=pretrain", "trainer.parallel_cells=1", f"paths.root={root}", f"logger.dir={root}",
                 f"hydra.sweep.dir={root}/sweep-{name}"], cwd=base, env=env, stdout=out, stderr=err)
    codes = {name: grid.wait(timeout=600) for name, grid in grids.items()}
    return base, root, {name: grid.pid for name, grid in grids.items()}, codes


def jobs(root: Path) -> list[tuple[str, str, str, str]]:
    """(grid, cell id, outcome, log) of every job of both grids."""
    return [(folder.parent.name[-1], (folder / "cell").resolve().name,
             json.loads((folder / "outcome.json").read_text())["status"], (folder / "run.log").read_text())
            for folder in sorted(root.glob("sweep-*/[0-9]*"))]


@pytest.mark.slow
def test_two_grids_started_together_both_exit_0_and_train_each_cell_exactly_once(two_grids):
    """Cell.lock: the second process to reach a cell waits for the first, then finds it finished and skips it, so each
    cell is pretrained by one process, writes its results.json once (from that process) and opens one W&B run."""
    base, root, pids, codes = two_grids
    assert codes == {"a": 0, "b": 0}, (base / "a.err").read_text()[-2000:] + (base / "b.err").read_text()[-2000:]
    cells = sorted(p.name for p in (root / "cells").iterdir())
    ran = jobs(root)
    assert len(cells) == 2 and len(ran) == 4 and sorted(cell for _, cell, _, _ in ran) == sorted(cells * 2)
    for cell in cells:
        mine = [(grid, outcome, log) for grid, c, outcome, log in ran if c == cell]
        assert sorted(outcome for _, outcome, _ in mine) == ["ok", "skipped"], [m[:2] for m in mine]
        [(winner, _, log)] = [m for m in mine if m[1] == "ok"]
        assert len(re.findall(rf"cell {cell} \S+: ok, \d+ real tokens", log)) == 1
        [(_, _, other)] = [m for m in mine if m[1] == "skipped"]
        assert f"cell {cell} " in other and "already finished" in other and "real tokens in" not in other
        results = json.loads((root / "cells" / cell / "results.json").read_text())
        assert results["status"] == "ok" and results["pid"] == pids[winner]  # written by the process that trained it
        runs = [p.name for p in (root / "wandb").glob("offline-run-*")  # W&B names a second run of an id <id>-1
                if re.fullmatch(rf"offline-run-\d+_\d+-{cell}(-\d+)?", p.name)]
        assert len(runs) == 1, runs
    waited = [(grid, cell, outcome) for grid, cell, outcome, log in ran if "is being run by another process" in log]
    assert waited and all(outcome == "skipped" for _, _, outcome in waited), waited  # a waiter never trains it again


@pytest.mark.slow
def test_two_grids_build_each_cache_once_and_leave_it_whole(two_grids):
    """data/cache.py, as the grids used it: the tokenizer was trained once, each cache has one folder, every file
    matching its manifest, no temporary build is left, and both cells were fed the same corpus and tokenizer."""
    base, root, _, codes = two_grids
    assert codes == {"a": 0, "b": 0}
    assert sum(log.count("training the bpe tokenizer") for _, _, _, log in jobs(root)) == 1
    for kind in ("corpus", "instances"):
        [folder] = [p for p in (root / "cache" / kind).iterdir() if p.is_dir()]
        assert _intact(folder, rebuild_damaged=False), folder
    assert temporary(root) == []  # nor a results.json.tmp-<pid> of write_atomic
    results = [json.loads(p.read_text()) for p in sorted(root.glob("cells/*/results.json"))]
    assert results[0]["data"] == results[1]["data"]
    [tokenizer] = root.glob("cache/corpus/*/tokenizer/tokenizer.json")
    assert all((root / "cells" / r["cell_id"] / "model" / "tokenizer.json").read_bytes() == tokenizer.read_bytes()
               for r in results)


BUILDER = """
import hashlib, sys, time
from pathlib import Path
from ablations.data.cache import cached

root, me = Path(sys.argv[1]), sys.argv[2]

def build(out):
    deadline = time.monotonic() + 60
    while len(list(root.glob("arrived-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)  # the other process has arrived: it now waits for the lock, or finds no finished folder yet
    with open(root / "builds", "a") as log:
        log.write(me + "\\n")
    for part in range(8):
        (out / f"{part}.bin").write_bytes(__import__("os").urandom(1 << 16))  # each build its own bytes

(root / f"arrived-{me}").touch()
folder = cached(root / "cache", "instances", {"format": "full_sentences"}, build)
print(hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.bin")))).hexdigest())
"""


def test_two_processes_asking_for_one_cache_at_once_build_it_once(tmp_path):
    """cache.cached: two processes that ask for the same folder at the same moment (the builder waits until both have
    asked) build it once under its lock; the other waits and reads the same bytes (each build writes random bytes, so
    a second build would show), and no temporary folder is left."""
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(tmp_path), name], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("a", "b")]
    seen = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], seen
    assert len((tmp_path / "builds").read_text().split()) == 1
    assert seen[0][0] == seen[1][0] and len(seen[0][0].strip()) == 64
    [folder] = [p for p in (tmp_path / "cache" / "instances").iterdir() if p.is_dir()]
    assert _intact(folder, rebuild_damaged=False) and temporary(tmp_path) == []


@pytest.mark.slow
def test_a_wandb_key_in_the_environment_is_written_to_no_file_of_a_grid(two_grids):
    """The grids ran with WANDB_API_KEY set (logger offline): no results.json, Hydra config or log, W&B run file,
    cache or report under paths.root holds it, nor the grids' console output."""
    base, root, _, _ = two_grids
    written = files(root)
    names = {p.name for p in written}
    assert {"results.json", "run.log", "config.yaml", "hydra.yaml", "overrides.yaml", "debug.log",
            "debug-internal.log", "report.md"} <= names and any(p.suffix == ".wandb" for p in written)
    assert holding([*written, *base.glob("*.out"), *base.glob("*.err")], KEY) == []


# -- damaged and foreign files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny static-masking cell, pretrained: its results.json, checkpoint and the two caches."""
    root = tmp_path_factory.mktemp("finished")
    results = run_cell(make_cfg(*CELL, root=root))
    assert results["status"] == "ok"
    return root, results


@pytest.fixture
def copy(finished, tmp_path):
    """A private copy of the finished cell's paths.root, for a test to damage."""
    root, results = finished
    shutil.copytree(root, tmp_path / "root", symlinks=True)
    return tmp_path / "root", results


def test_a_truncated_results_json_is_moved_aside_and_the_cell_runs_again(copy, caplog):
    """read_results: a results.json cut short is never trusted; it is moved aside (kept for inspection) with a warning
    naming it, and the cell runs again, from its last checkpoint, to the same numbers."""
    root, first = copy
    path = root / "cells" / first["cell_id"] / "results.json"
    cut = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(cut)
    again = run_cell(make_cfg(*CELL, root=root))
    [aside] = path.parent.glob("results.json.unreadable-*")
    assert aside.read_bytes() == cut
    assert f"{path} is not a results object" in caplog.text and aside.name in caplog.text
    assert "resuming from" in caplog.text and "already finished" not in caplog.text
    on_disk = json.loads(path.read_text())
    assert again["status"] == on_disk["status"] == "ok" and on_disk["timing"] != first["timing"]
    assert on_disk["steps"] == first["steps"]
    assert on_disk["metrics"]["val/mlm_loss"] == pytest.approx(first["metrics"]["val/mlm_loss"], rel=1e-5)


@pytest.mark.parametrize("version", [1, 3, None])
def test_a_results_json_of_another_schema_version_is_refused_by_name_and_left_as_it_is(copy, caplog, version):
    """read_results: numbers written under another schema are neither read as this one's nor overwritten: the cell
    stops with a one-line error naming the file, before any data is prepared or anything trained."""
    root, first = copy
    cell = root / "cells" / first["cell_id"]
    foreign = {k: v for k, v in json.loads((cell / "results.json").read_text()).items() if k != "schema_version"}
    text = json.dumps({**foreign, **({"schema_version": version} if version else {})})
    (cell / "results.json").write_text(text)
    checkpoint = (cell / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(ConfigError) as refused:
        run_cell(make_cfg(*CELL, root=root))
    message = str(refused.value)
    assert message.startswith(f"{cell / 'results.json'}: schema_version {version}") and "\n" not in message
    assert (cell / "results.json").read_text() == text and not list(cell.glob("results.json.*"))
    assert (cell / "checkpoints" / "last.ckpt").read_bytes() == checkpoint
    assert "training the" not in caplog.text and "steps x" not in caplog.text


def test_force_refused_for_another_schema_version_leaves_the_cells_checkpoints(copy):
    """A cell refused as another schema's must be left as it is, force=true or not: the refusal tells the user to
    move the folder away, and what they move must still hold its checkpoints."""
    root, first = copy
    cell = root / "cells" / first["cell_id"]
    (cell / "results.json").write_text(json.dumps({"schema_version": 1, "status": "ok"}))
    with pytest.raises(ConfigError):
        run_cell(make_cfg(*CELL, "force=true", root=root))
    assert (cell / "checkpoints" / "last.ckpt").exists()


def _cut_short(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _one_byte_changed(data: bytes) -> bytes:
    """Damage the file's size cannot show: a byte flipped in place (a disk or a copy gone wrong)."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.mark.parametrize("damage", [_cut_short, _one_byte_changed])
def test_a_damaged_cache_file_is_rebuilt_to_the_same_bytes(copy, caplog, damage):
    """data/cache.py: a cached file whose size or content no longer matches the DONE manifest is rebuilt (instances
    are deterministic: the rebuild gives the original bytes) with a warning naming it, never read as it is."""
    root, _ = copy
    [folder] = [p for p in (root / "cache" / "instances").iterdir() if p.is_dir()]
    path = sorted(folder.rglob("*.npy"))[0]
    whole = path.read_bytes()
    path.write_bytes(damage(whole))
    data = prepare(make_cfg(*CELL, root=root), root)
    assert f"{folder}: missing or changed since it was built ({path.relative_to(folder)}): rebuilt" in caplog.text
    assert path.read_bytes() == whole and _intact(folder, rebuild_damaged=False) and temporary(root) == []
    assert data.stats["train_sequences"][0] > 0


@pytest.mark.parametrize("damage", ["delete tokenizer/tokenizer.json", "delete tokenizer/tokenizer_config.json",
                                    "truncate synthetic.train.npz", "flip synthetic.train.npz"])
def test_a_damaged_corpus_cache_is_refused_by_name_and_the_tokenizer_never_trained_again(copy, caplog, damage):
    """data/cache.py with rebuild_damaged=False: the corpus cache holds the tokenizer every cell of the grid shares,
    and one trained again can differ, so damage (a tokenizer file missing, the encoded corpus cut short or changed in
    place) is a one-line error naming the file, for prepare and for a new cell on it (before its results.json is
    written), and the folder is left as it is for the user to delete."""
    root, _ = copy
    [folder] = [p for p in (root / "cache" / "corpus").iterdir() if p.is_dir()]
    how, name = damage.split()
    if how == "delete":
        (folder / name).unlink()
    else:
        damaged = _cut_short if how == "truncate" else _one_byte_changed
        (folder / name).write_bytes(damaged((folder / name).read_bytes()))
    left = {str(p): p.read_bytes() for p in files(folder)}
    for attempt in (lambda: prepare(make_cfg(*CELL, root=root), root),
                    lambda: run_cell(make_cfg(*CELL, "seed=1", root=root))):
        with pytest.raises(ConfigError) as refused:
            attempt()
        message = str(refused.value)
        assert message.startswith(f"{folder / name}: missing or changed since the cache was built; delete {folder}")
        assert "\n" not in message
    assert {str(p): p.read_bytes() for p in files(folder)} == left and temporary(root) == []
    assert "training the" not in caplog.text
    assert not (Cell.of(make_cfg(*CELL, "seed=1"), root).results_path).exists()


@pytest.mark.parametrize("other", ["seed=1", "model=mini"])
def test_a_checkpoint_of_another_cell_is_refused_not_loaded(copy, caplog, other):
    """pretraining._resume_from: a checkpoint in a cell's folder that another cell wrote (another seed, another model
    size) is refused with an error naming it and both cells, before a step is trained; the cell records failed (so a
    grid names it) and the checkpoint is left in place. Moved away, the cell trains from scratch."""
    root, first = copy
    cfg = make_cfg(*CELL, other, root=root)
    cell = Cell.of(cfg, root)
    assert cell.id != first["cell_id"]
    (cell.dir / "checkpoints").mkdir(parents=True)
    foreign = cell.dir / "checkpoints" / "last.ckpt"
    shutil.copy(root / "cells" / first["cell_id"] / "checkpoints" / "last.ckpt", foreign)
    before = foreign.read_bytes()
    with pytest.raises(ConfigError) as refused:
        run_cell(cfg)
    message = str(refused.value)
    assert message == f"{foreign}: a checkpoint of cell {first['cell_id']}, not of this cell {cell.id}; move it away"
    results = json.loads(cell.results_path.read_text())
    assert results["status"] == "failed" and message in results["error"]
    assert foreign.read_bytes() == before and not (cell.dir / "model").exists()
    assert "resuming from" not in caplog.text and "step 2/" not in caplog.text
    if other == "seed=1":  # (a mini model trains too slowly for this file)
        foreign.rename(root / "moved-away.ckpt")
        caplog.clear()
        again = run_cell(make_cfg(*CELL, other, root=root))
        assert again["status"] == "ok" and again["steps"] == first["steps"] and "resuming from" not in caplog.text


@pytest.mark.parametrize("content", [b'{"schema_version": 2, "status": "ok\xff', b"[]", b"null"],
                         ids=["not utf-8", "a list", "null"])
def test_an_unreadable_results_json_of_any_kind_is_moved_aside_or_refused_by_name(tmp_path, content):
    """Whatever makes a results.json unreadable (a byte that is not UTF-8, JSON that is not an object), it is moved
    aside and the cell runs again, or refused with an error naming it; never a crash with a traceback."""
    path = tmp_path / "results.json"
    path.write_bytes(content)
    try:
        assert read_results(path) == {} and list(tmp_path.glob("results.json.unreadable-*"))
    except ConfigError as err:
        assert str(path) in str(err)


def test_a_corpus_cache_that_lost_its_manifest_is_refused_not_trained_again(copy, caplog):
    """Builds are renamed into place with DONE inside, so a corpus folder in place without it was damaged, not killed
    mid-build: like any other damage to the tokenizer's cache it must be refused by name (a WordPiece tokenizer trained
    again gets another vocabulary, so every cell trained before would be fed other token ids on resume)."""
    root, _ = copy
    [folder] = [p for p in (root / "cache" / "corpus").iterdir() if p.is_dir()]
    (folder / "DONE").unlink()
    tokenizer = (folder / "tokenizer" / "tokenizer.json").read_bytes()
    with pytest.raises(ConfigError) as refused:
        prepare(make_cfg(*CELL, root=root), root)
    assert str(folder) in str(refused.value) and "training the" not in caplog.text
    assert (folder / "tokenizer" / "tokenizer.json").read_bytes() == tokenizer


# -- Weights & Biases failures ---------------------------------------------------------------------------------


@pytest.fixture
def wandb_env(monkeypatch, tmp_path):
    """W&B caches the credentials of the process it first ran in: drop them before and after a test that changes
    them, and keep its config, cache and data folders (and any netrc) out of the user's home."""
    import wandb

    wandb.teardown()
    for name in ("config", "cache", "data"):
        monkeypatch.setenv(f"WANDB_{name.upper()}_DIR", str(tmp_path / "root" / f"wandb-{name}"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "10")  # an online init that slips through fails in seconds
    yield
    wandb.teardown()


@pytest.mark.parametrize("key", [None, KEY], ids=["no key", "a key but no server"])
def test_online_wandb_without_credentials_or_server_fails_before_any_work(tmp_path, monkeypatch, wandb_env, key):
    """tracking.check: logger.mode=online with no API key, or with one but no server to reach, stops the cell with a
    one-line error saying what is missing and how to log offline, before any data is prepared: nothing is written."""
    if key:
        monkeypatch.setenv("WANDB_API_KEY", key)
    else:
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    root = tmp_path / "cell"
    with pytest.raises(ConfigError) as refused:
        run_cell(make_cfg(*TINY, *GLUE, "logger.mode=online", f"logger.dir={root}", root=root))
    message = str(refused.value)
    problem = "cannot reach 127.0.0.1 (ConnectionRefusedError)" if key else "needs W&B credentials (WANDB_API_KEY"
    assert message.startswith(f"logger.mode=online {problem}") and "\n" not in message
    assert "logger.mode=offline" in message and "logger.offline_fallback=true" in message
    assert not root.exists()


def test_offline_fallback_logs_offline_and_says_so(tmp_path, monkeypatch, caplog, wandb_env):
    """logger.offline_fallback=true: the same cell warns that it logs offline instead and runs, with an offline W&B
    run (recorded as such in results.json) that `wandb sync` can upload later. WANDB_MODE is unset, so the offline
    mode comes from the fallback alone."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    root = tmp_path / "root"
    results = run_cell(make_cfg(*TINY, "stage=pretrain", "logger.mode=online", "logger.offline_fallback=true",
                                f"logger.dir={root}", root=root))
    assert "logger.mode=online needs W&B credentials" in caplog.text
    assert "logging offline instead (logger.offline_fallback=true)" in caplog.text
    on_disk = json.loads((root / "cells" / results["cell_id"] / "results.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["wandb"]["mode"] == "offline"
    assert on_disk["config"]["logger"]["mode"] == "offline"
    assert [p.name for p in (root / "wandb").glob(f"offline-run-*-{results['cell_id']}")]


def test_wandb_failing_mid_run_never_costs_results_json(tmp_path, monkeypatch, caplog):
    """SafeWandbLogger and tracking._quietly: W&B is the mirror, results.json the record. With every history log,
    summary update and run finish raising (pretraining and fine-tuning runs alike), the cell still ends ok with its
    pretraining and GLUE numbers in results.json, and each failure is a warning."""
    from wandb.sdk import wandb_run, wandb_summary

    failed = Counter()

    def failing(name, real=None):
        def call(self, *args, **kwargs):
            failed[name] += 1
            if real:  # the run really finishes (nothing leaks into later tests), then W&B reports an error
                real(self, *args, **kwargs)
            raise RuntimeError(f"W&B is down ({name})")
        call.__name__ = name  # what the harness's warning names
        return call

    monkeypatch.setattr(wandb_run.Run, "log", failing("log"))
    monkeypatch.setattr(wandb_summary.SummaryDict, "update", failing("update"))
    monkeypatch.setattr(wandb_run.Run, "finish", failing("finish", wandb_run.Run.finish))
    root = tmp_path / "root"
    results = run_cell(make_cfg(*TINY, *GLUE, f"logger.dir={root}", root=root))
    assert failed["log"] >= 2 and failed["update"] >= 2 and failed["finish"] >= 2  # pretraining and sst2 runs
    on_disk = json.loads((root / "cells" / results["cell_id"] / "results.json").read_text())
    assert on_disk["status"] == "ok" and math.isfinite(on_disk["metrics"]["val/mlm_loss"])
    [glue] = on_disk["glue"].values()
    assert glue["status"] == "ok" and "glue/sst2/score" in glue["metrics"]
    for call in ("log_metrics", "update", "finish"):
        assert f"W&B: {call} failed (RuntimeError: W&B is down" in caplog.text, call
    assert "results.json is unaffected" in caplog.text


def test_a_reopened_cell_run_sends_again_the_pretraining_rows_and_summary_wandb_lost(tmp_path):
    """pretraining.reopened: W&B writes an offline run's rows late, so a cell killed while its run was open for
    fine-tuning can leave W&B none of them (test_grid kills one for real). Here the loss is the finished pretraining
    part deleted; fine-tuning the cell sends every row again, once and in order, and the summary."""
    root = tmp_path / "root"
    results = run_cell(make_cfg(*TINY, *GLUE, "stage=pretrain", f"logger.dir={root}", root=root))
    rows = wandb_history(root, results["cell_id"])
    [part] = root.glob(f"wandb/offline-run-*-{results['cell_id']}")
    shutil.rmtree(part)
    run_cell(make_cfg(*TINY, *GLUE, "stage=finetune", f"logger.dir={root}", root=root))
    assert len(rows) > 5 and wandb_history(root, results["cell_id"]) == rows
    [reopened] = root.glob(f"wandb/offline-run-*-{results['cell_id']}")
    summary = leet(reopened, "--summary")["summary"]
    assert summary["val/mlm_loss"] == results["metrics"]["val/mlm_loss"] and summary["status"] == "ok"
    assert summary["tokens_seen"] == results["tokens_seen"] and summary["glue/status"] == "ok"


def test_a_wandb_key_in_the_environment_is_written_to_no_file_of_a_cell(tmp_path, monkeypatch, caplog, wandb_env):
    """A key in WANDB_API_KEY while logging offline (pretraining and a fine-tuning run): no file under paths.root
    (results.json, caches, model, predictions, the W&B runs with their debug logs, W&B's own config, cache and data
    folders, here under the root too) nor the log holds it."""
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    root = tmp_path / "root"
    monkeypatch.setenv("WANDB_DIR", str(root / "wandb"))
    results = run_cell(make_cfg(*TINY, *GLUE, f"logger.dir={root}", root=root))
    assert results["status"] == "ok" and results["glue"]
    written = files(root)
    assert {"results.json", "debug.log", "debug-internal.log", "tokenizer.json", "sst2-seed1.tsv"} <= {
        p.name for p in written} and len([p for p in written if p.suffix == ".wandb"]) == 2
    assert holding(written, KEY) == [] and KEY[9:] not in caplog.text
