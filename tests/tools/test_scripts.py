"""Every script in bench/ and tools/ runs, in a short smoke mode (a tiny model or the embedded one, a few tokens):
a rename in the package breaks a test, not the next person who runs the script. Scripts that cannot run here
are listed with the reason, and every shell script at least parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LITERATURE = REPO.parent / "shared" / "data" / "ru_literature"

#: Scripts the suite does not run, and why (their shell syntax is still checked below).
NOT_RUN = {
    "bench/batch_cap.py": "test_batch_cap",
    "tools/build_onefolder.sh": "a PyInstaller build: 5-10 minutes and the `bundle` extra",
    "tools/device_train.sh": "trains on a lent GPU machine (nvidia-smi, .devcarry/ from pack_for_device.sh)",
    "tools/pack_for_device.sh": "packs build/corpus and build/tokenizer16k into the checkout's .devcarry/",
    "tools/render_icons.sh": "rewrites the committed icon PNGs; needs rsvg-convert",
    "tools/setup.sh": "creates the virtual environment and installs packages",
    "tools/check.sh": "runs this whole suite (over 30 minutes)",
}
#: Scripts run by a test below, by the test's name.
RUN = {
    "bench/batch_cap.py": "test_batch_cap",
    "bench/lab_update.py": "test_lab_update",
    "bench/memory_estimate.py": "test_memory_estimate",
    "bench/story.py": "test_story",
    "bench/ui_responsiveness.py": "test_ui_responsiveness",
    "tools/decode_loop.py": "test_decode_loop",
    "tools/prepare_corpus.py": "test_training_pipeline",
    "tools/train_tokenizer.py": "test_training_pipeline",
    "tools/train_embedded.py": "test_training_pipeline",
    "tools/evaluate_embedded.py": "test_training_pipeline",
    "tools/validate_advice.py": "test_validate_advice",
    "tools/onefolder/launcher.py": "test_onefolder_launcher",
}


def _script(name: str, *args: str, timeout: float = 600) -> str:
    """Run a script as its docstring says (from the repo root, the package on PYTHONPATH); its output."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "QT_QPA_PLATFORM": "offscreen", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(REPO / name), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{name} {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_every_script_is_run_or_listed_with_a_reason() -> None:
    found = {
        p.relative_to(REPO).as_posix()
        for pattern in ("bench/*.py", "tools/**/*.py", "tools/*.sh")
        for p in REPO.glob(pattern)
    }
    assert found == set(RUN) | set(NOT_RUN), "add the new script's smoke test to RUN, or its reason to NOT_RUN"
    tests = set(globals())
    assert {t for t in RUN.values() if t not in tests} == set()


@pytest.mark.parametrize("name", sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("tools/*.sh")))
def test_shell_scripts_parse(name: str) -> None:
    done = subprocess.run(["bash", "-n", str(REPO / name)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_lab_update() -> None:
    out = _script("bench/lab_update.py", "--smoke", "--chart")
    assert "view update, 4 settings" in out and "view + chart redraw" in out


def test_memory_estimate(tmp_path: Path) -> None:
    results = tmp_path / "memory.json"
    out = _script("bench/memory_estimate.py", "--smoke", "--out", str(results))
    rows = json.loads(results.read_text())["rows"]
    assert [(r["shape"], r["name"]) for r in rows] == [("toy", "greedy"), ("toy", "beam2")]
    assert all(r["measured"]["new_tokens"] == 4 for r in rows)
    assert "worst |estimated / measured - 1|" in out


def test_story() -> None:
    out = _script("bench/story.py", "--smoke")
    assert "open a story of 50 nodes" in out and "first new token after" in out


def test_batch_cap(tiny_model_dir: Path) -> None:
    args = ("--model", str(tiny_model_dir), "--contexts", "4,8", "--steps", "4", "--rounds", "1")
    out = _script("bench/batch_cap.py", *args)
    for setting in ("llama.cpp's choice", "flash attention off"):
        assert f"attention: {setting}" in out
    assert out.count("4 in one batch at most") == 4
    assert f"{tiny_model_dir.name}, q8_0, " in out and "this build of llama.cpp uses" in out


def test_ui_responsiveness() -> None:
    out = _script("bench/ui_responsiveness.py", "--smoke")
    assert "first load of the embedded model" in out
    assert "Stop, scripted engine at 50 ms per token" in out and "scripted tokens at ~2000 tok/s" in out


def test_decode_loop(tiny_model_dir: Path) -> None:
    from gptdesk.models.gguf.convert import ensure_gguf
    from gptdesk.models.locate import resolve

    gguf = ensure_gguf(resolve(tiny_model_dir), "q8_0").path
    out = _script("tools/decode_loop.py", str(gguf), "--threads", "1", "--steps", "4")
    assert "1 threads, mapped:" in out and "tok/s" in out


def test_training_pipeline(tmp_path: Path) -> None:
    """The embedded model's recipe end to end, at toy size: clean, tokenize, train 3 steps, evaluate."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from prepare_corpus import HELDOUT
    finally:
        sys.path.remove(str(REPO / "tools"))
    source = tmp_path / "literature"
    training = ["prose/Chekhov/Каштанка.txt", "prose/Pushkin/Капитанская дочка.txt"]
    for rel in [*HELDOUT, *training]:
        target = source / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # The first lines of the real work: the cleaning sees real apparatus, accents and dialogue.
        target.write_text((LITERATURE / rel).read_text(encoding="utf-8")[:8000], encoding="utf-8")
    corpus, tokenizer, work, model = (tmp_path / n for n in ("corpus", "tok", "work", "model"))
    _script("tools/prepare_corpus.py", "--source", str(source), "--out", str(corpus))
    stats = json.loads((corpus / "stats.json").read_text())
    assert stats["heldout_works"] == len(HELDOUT) and stats["train_works"] == len(training)

    _script(
        "tools/train_tokenizer.py",
        "--corpus",
        str(corpus / "train.txt"),
        "--vocab-size",
        "400",
        "--out",
        str(tokenizer),
    )
    assert (tokenizer / "vocab.json").exists() and (tokenizer / "merges.txt").exists()

    sizes = ["--n-embd", "32", "--n-layer", "1", "--n-head", "2", "--n-positions", "32", "--batch-size", "2"]
    out = _script(
        "tools/train_embedded.py",
        *("--corpus", str(corpus), "--tokenizer", str(tokenizer), "--work", str(work), "--out", str(model)),
        *("--device", "cpu", "--threads", "1", "--max-steps", "3", "--time-budget", "600", *sizes),
    )
    card = json.loads((model / "training.json").read_text())
    assert card["steps"] == 3 and card["heldout_bits_per_char"] > 0 and '"step": 3' in out

    report = tmp_path / "evaluation.json"
    _script(
        "tools/evaluate_embedded.py",
        *("--model", str(model), "--corpus", str(corpus), "--samples", "2", "--tokens", "4"),
        *("--no-spell-check", "--out", str(report)),
    )
    evaluation = json.loads(report.read_text())
    assert evaluation["heldout_bits_per_char"] == pytest.approx(card["heldout_bits_per_char"], rel=0.05)
    assert len(evaluation["example_samples"]) == 2 and evaluation["real_word_rate"] is None


def test_validate_advice(tmp_path: Path) -> None:
    results = tmp_path / "advice.json"
    _script(
        "tools/validate_advice.py",
        *("--prompts", "1", "--works", "1", "--tokens", "4", "--threads", "1", "--json", str(results)),
    )
    summary = json.loads(results.read_text())["summary"]
    assert summary["prompts"] == 1 and summary["tokens"] == 4


def test_onefolder_launcher() -> None:
    from gptdesk import __version__

    assert _script("tools/onefolder/launcher.py", "--version").strip() == f"gptdesk {__version__}"
