"""Hub downloads against a fake hub on 127.0.0.1: full download, resume, corruption, cancel, disk, network."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gptdesk.errors import DiskSpaceError, DownloadCancelled, ModelCorruptError, ModelNotFoundError, NetworkError
from gptdesk.models.cost import format_bytes
from gptdesk.models.hub.download import pull
from gptdesk.models.hub.plan import plan, select_files
from gptdesk.models.hub.progress import DownloadProgress, Meter
from gptdesk.models.hub.settings import HubSettings, RetryPolicy
from gptdesk.models.locate import find_local, resolve
from tests.models.hub_server import FakeHub, point_at

REPO_ID = "ai-forever/rugpt3small_based_on_gpt2"
FAST_RETRY = RetryPolicy(attempts=4, first_delay_s=0.05, max_delay_s=0.1, read_timeout_s=5)


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """English messages whatever an earlier test left set (`main(["--lang", "ru", …])` sets it for the process)."""
    from gptdesk.i18n import set_language

    set_language("en")
    yield
    set_language(None)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with FakeHub() as server:
        point_at(server, monkeypatch, tmp_path / "hub")
        yield server


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hub"


def _repo_dir(cache: Path, repo_id: str = REPO_ID) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _body_gets(hub: FakeHub, filename: str) -> list[str | None]:
    """The Range header of every GET that fetched `filename`'s bytes (None: the whole file)."""
    if filename.endswith(".safetensors"):
        blob = next(f for r in hub.repos.values() for f in r.files.values() if f.name == filename)
        gets = [r for r in hub.requests("GET") if r.path.startswith("/blobs/" + blob.sha256)]
    else:
        gets = [r for r in hub.requests("GET") if r.path.endswith("/" + filename)]
    return [r.headers.get("range") for r in gets]


def test_only_the_files_a_gpt2_model_needs_are_chosen() -> None:
    listing = [
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.json",
        "README.md",
        ".gitattributes",
        "model.safetensors",
        "pytorch_model.bin",
        "tf_model.h5",
        "flax_model.msgpack",
        "rust_model.ot",
        "onnx/model.onnx",
        "onnx/config.json",
        "model.gguf",
    ]
    assert select_files(listing) == ["config.json", "tokenizer.json", "vocab.json", "merges.txt", "model.safetensors"]
    bin_only = ["config.json", "vocab.json", "merges.txt", "pytorch_model.bin", "tf_model.h5"]
    assert select_files(bin_only) == ["config.json", "vocab.json", "merges.txt", "pytorch_model.bin"]
    sharded = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model-00001-of-00002.bin",
    ]
    assert select_files(sharded) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]


def test_full_download_loads_and_generates_and_later_needs_no_network(
    hub: FakeHub, cache: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptdesk.engine import TokenEvent
    from gptdesk.engine.hf import TransformersEngine
    from gptdesk.settings.presets import get_preset

    extra = {"tf_model.h5": b"x" * 1000, "flax_model.msgpack": b"y" * 1000, "onnx/model.onnx": b"z" * 100}
    repo = hub.add_repo(REPO_ID, tiny_model_dir, extra={**extra, "pytorch_model.bin": b"w" * 5000})
    events: list[DownloadProgress] = []
    snap = pull("sberbank-ai/rugpt3small_based_on_gpt2", progress=events.append)

    # In the standard cache layout, where huggingface_hub itself finds it.
    assert snap == _repo_dir(cache) / "snapshots" / repo.commit
    assert (_repo_dir(cache) / "refs" / "main").read_text() == repo.commit
    for source in tiny_model_dir.iterdir():
        assert (snap / source.name).read_bytes() == source.read_bytes(), source.name
        assert (snap / source.name).is_symlink()
    assert sorted(p.name for p in snap.iterdir()) == sorted(p.name for p in tiny_model_dir.iterdir())
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache(REPO_ID, "model.safetensors", cache_dir=cache) == str(snap / "model.safetensors")
    # TensorFlow, Flax, ONNX and the pickle copy were never fetched (safetensors are preferred).
    fetched = " ".join(r.path for r in hub.requests())
    assert "tf_model" not in fetched and "flax" not in fetched and "onnx" not in fetched
    assert "pytorch_model.bin" not in fetched

    # Progress: bytes only go up, to the total; the last event says done.
    total = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    assert events[-1].phase == "done" and events[-1].done_bytes == total == events[-1].total_bytes
    done = [e.done_bytes for e in events]
    assert done == sorted(done)
    assert {e.filename for e in events if e.phase == "download"} == {p.name for p in tiny_model_dir.iterdir()}

    # The hub goes away; the cached model still resolves, loads and generates like the original.
    hub.stop()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert find_local("rugpt3small") == snap
    settings = get_preset("greedy").settings(max_new_tokens=8)
    with (
        TransformersEngine.load("rugpt3small", device="cpu", dtype="float32") as engine,
        TransformersEngine.load(tiny_model_dir, device="cpu", dtype="float32") as original,
    ):
        assert engine.info.model_id == REPO_ID
        assert engine.info.revision == repo.commit
        got = [e.text for e in engine.stream("Москва — столица", settings) if isinstance(e, TokenEvent)]
        want = [e.text for e in original.stream("Москва — столица", settings) if isinstance(e, TokenEvent)]
    assert len(got) == 8 and got == want


def test_a_dropped_connection_resumes_with_a_range_request(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.drop_after["model.safetensors"] = 1_000_000
    hub.faults.drop_times["model.safetensors"] = 1
    events: list[DownloadProgress] = []
    snap = pull("rugpt3small", progress=events.append, retry=FAST_RETRY)
    assert _body_gets(hub, "model.safetensors") == [None, "bytes=1000000-"]
    assert (snap / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    notes = [e.note.en for e in events if e.note is not None]
    assert any("connection lost" in n and "retrying" in n for n in notes), notes
    done = [e.done_bytes for e in events]
    assert done == sorted(done)  # a resume never moves the bar back


def test_a_server_error_is_retried(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.fail_status["vocab.json"] = [503, 502]
    events: list[DownloadProgress] = []
    snap = pull("rugpt3small", progress=events.append, retry=FAST_RETRY)
    assert len(_body_gets(hub, "vocab.json")) == 3
    assert (snap / "vocab.json").read_bytes() == (tiny_model_dir / "vocab.json").read_bytes()
    assert sum("retrying" in e.note.en for e in events if e.note is not None) == 2


def test_an_interrupted_download_resumes_in_a_later_run(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.drop_after["model.safetensors"] = 1_500_000  # every try is cut at the same byte
    with pytest.raises(NetworkError) as caught:
        pull("rugpt3small", retry=RetryPolicy(attempts=2, first_delay_s=0.01))
    message = caught.value.message("en")
    assert "run the download again to resume" in message and "2 tries" in message
    assert "продолжить" in caught.value.message("ru")
    # Nothing is registered: no ref, no snapshot, and GPT Desk does not see a model.
    repo_dir = _repo_dir(cache)
    assert not (repo_dir / "refs" / "main").exists()
    assert not (repo_dir / "snapshots").exists()
    assert find_local("rugpt3small") is None
    weights = repo.files["model.safetensors"]
    partial = repo_dir / "blobs" / (weights.sha256 + ".incomplete")
    assert partial.read_bytes() == weights.data[:1_500_000]

    hub.faults.drop_after.clear()
    hub.log.clear()
    events: list[DownloadProgress] = []
    snap = pull("rugpt3small", progress=events.append)
    assert _body_gets(hub, "model.safetensors") == ["bytes=1500000-"]
    # The small files were whole and are only checked, not fetched again.
    assert _body_gets(hub, "vocab.json") == []
    assert (snap / "model.safetensors").read_bytes() == weights.data
    assert not partial.exists()
    assert max(e.resumed_bytes for e in events) == 1_500_000


def test_a_killed_process_leaves_a_partial_file_that_the_next_run_resumes(
    hub: FakeHub, cache: Path, tiny_model_dir: Path
) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    weights = repo.files["model.safetensors"]
    hub.faults.throttle["model.safetensors"] = 1_000_000  # bytes per second: ~6.5 s for the file
    partial = _repo_dir(cache) / "blobs" / (weights.sha256 + ".incomplete")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptdesk", "models", "pull", "rugpt3small"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (partial.exists() and partial.stat().st_size >= 1_000_000):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download did not start"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no cleanup code runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    left = partial.stat().st_size
    assert 1_000_000 <= left < weights.data.__len__()
    assert find_local("rugpt3small") is None

    hub.faults.throttle.clear()
    hub.log.clear()
    snap = pull("rugpt3small")
    ranges = _body_gets(hub, "model.safetensors")
    assert len(ranges) == 1 and ranges[0] is not None
    start = int(ranges[0].removeprefix("bytes=").rstrip("-"))
    assert start == left
    assert _sha(snap / "model.safetensors") == weights.sha256


def test_a_damaged_transfer_is_detected_and_fetched_again(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.corrupt_times["model.safetensors"] = 1
    hub.faults.corrupt_times["vocab.json"] = 1  # a small (non-LFS) file: checked by its git object id
    events: list[DownloadProgress] = []
    snap = pull("rugpt3small", progress=events.append)
    assert _body_gets(hub, "model.safetensors") == [None, None]
    assert _body_gets(hub, "vocab.json") == [None, None]
    assert _sha(snap / "model.safetensors") == repo.files["model.safetensors"].sha256
    assert (snap / "vocab.json").read_bytes() == repo.files["vocab.json"].data
    assert sum("arrived damaged" in e.note.en for e in events if e.note is not None) >= 2


def test_a_file_that_is_always_damaged_is_refused_and_not_kept(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.corrupt_times["model.safetensors"] = 10
    with pytest.raises(ModelCorruptError) as caught:
        pull("rugpt3small")
    text = caught.value.message("en")
    assert "damaged twice" in text and repo.files["model.safetensors"].sha256 in text
    assert "HF_ENDPOINT" in caught.value.message("ru")
    blobs = _repo_dir(cache) / "blobs"
    assert not list(blobs.glob(repo.files["model.safetensors"].sha256 + "*"))
    assert not (_repo_dir(cache) / "refs" / "main").exists()


def test_a_damaged_file_in_the_cache_is_detected_and_fetched_again(
    hub: FakeHub, cache: Path, tiny_model_dir: Path
) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    snap = pull("rugpt3small")
    blob = (snap / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 3] ^= 0x01  # one flipped bit, as a bad disk or copy leaves it
    blob.write_bytes(bytes(data))
    hub.log.clear()
    events: list[DownloadProgress] = []
    again = pull("rugpt3small", progress=events.append)
    assert again == snap
    assert _body_gets(hub, "model.safetensors") == [None]
    assert _body_gets(hub, "config.json") == []  # the intact files are not fetched again
    assert _sha(snap / "model.safetensors") == repo.files["model.safetensors"].sha256
    assert any(e.note is not None and "damaged" in e.note.en for e in events)


def test_cancel_leaves_nothing_registered_and_the_next_pull_resumes(
    hub: FakeHub, cache: Path, tiny_model_dir: Path
) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.throttle["model.safetensors"] = 2_000_000
    cancel = threading.Event()
    seen: list[DownloadProgress] = []

    def progress(p: DownloadProgress) -> None:
        seen.append(p)
        if p.filename == "model.safetensors" and p.file_done >= 500_000:
            cancel.set()

    started = time.monotonic()
    with pytest.raises(DownloadCancelled) as caught:
        pull("rugpt3small", progress=progress, cancel=cancel)
    assert time.monotonic() - started < 3  # within a block, not at the end of the 3 s file
    assert "download it again to resume" in caught.value.message("en")
    assert caught.value.exit_code == 130
    repo_dir = _repo_dir(cache)
    assert not (repo_dir / "refs").exists() and not (repo_dir / "snapshots").exists()
    assert find_local("rugpt3small") is None
    with pytest.raises(ModelNotFoundError):
        resolve("rugpt3small")
    weights = repo.files["model.safetensors"]
    partial = repo_dir / "blobs" / (weights.sha256 + ".incomplete")
    kept = partial.stat().st_size
    assert 500_000 <= kept < len(weights.data)

    hub.faults.throttle.clear()
    snap = pull("rugpt3small")
    assert _body_gets(hub, "model.safetensors")[-1] == f"bytes={kept}-"
    assert _sha(snap / "model.safetensors") == weights.sha256


def test_a_file_another_program_is_downloading_is_waited_for(hub: FakeHub, tiny_model_dir: Path) -> None:
    from filelock import FileLock

    hub.add_repo(REPO_ID, tiny_model_dir)
    the_plan = plan("rugpt3small")
    lock_path = the_plan.lock_path(the_plan.files[0])
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    cancel = threading.Event()
    seen: list[DownloadProgress] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            pull("rugpt3small", progress=seen.append, cancel=cancel)
        except BaseException as exc:
            errors.append(exc)

    with FileLock(str(lock_path)):  # huggingface_hub (or another GPT Desk) holds this blob's lock
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 20
        while not any(p.note is not None and "another program" in p.note.en for p in seen):
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.05)
        assert not hub.requests("GET", "/resolve/")  # nothing fetched while waiting
        cancel.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DownloadCancelled)


def test_not_enough_disk_space_is_refused_before_downloading(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    total = sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    asked: list[Path] = []

    def free_space(path: Path) -> int:
        asked.append(path)
        return 50_000_000  # less than the download plus the 100 MB kept free

    with pytest.raises(DiskSpaceError) as caught:
        pull("rugpt3small", free_space=free_space)
    assert asked == [cache]
    en, ru = caught.value.message("en"), caught.value.message("ru")
    assert f"needs {format_bytes(total)} more" in en and "50 MB is free" in en and "HF_HUB_CACHE" in en
    assert format_bytes(total, "ru") in ru and "Освободите" in ru
    assert caught.value.exit_code == 4
    assert hub.requests("GET", "/resolve/") == [] and not hub.requests("GET", "/blobs/")
    # Enough room: the same download goes ahead.
    pull("rugpt3small", free_space=lambda path: 10**12)


def test_the_network_down_says_so_and_offers_what_is_here(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeHub() as server:
        point_at(server, monkeypatch, tmp_path / "hub")
        server.add_repo("someone/tiny-gpt2", tiny_model_dir)
        pull("someone/tiny-gpt2")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(NetworkError) as caught:
        pull("rugpt3large")
    en, ru = caught.value.message("en"), caught.value.message("ru")
    assert "Cannot reach the model hub" in en and "rugpt3large" in en
    assert "someone/tiny-gpt2" in en and "ruslit-tiny" in en and "model folder" in en
    assert "нет сети" in ru and "папку модели" in ru


def test_the_network_dropping_mid_download_keeps_the_bytes(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    repo = hub.add_repo(REPO_ID, tiny_model_dir)
    hub.faults.throttle["model.safetensors"] = 2_000_000
    stopper: list[threading.Thread] = []

    def progress(p: DownloadProgress) -> None:
        if p.filename == "model.safetensors" and p.file_done >= 400_000 and not stopper:
            stopper.append(threading.Thread(target=hub.stop))  # the cable is pulled
            stopper[0].start()

    # The open transfer stalls (no byte, no error) until the read timeout; then connections are refused.
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        pull("rugpt3small", progress=progress, retry=RetryPolicy(attempts=3, first_delay_s=0.05, read_timeout_s=1))
    assert time.monotonic() - started < 15
    stopper[0].join()
    assert "keeps failing" in caught.value.message("en")
    partial = _repo_dir(cache) / "blobs" / (repo.files["model.safetensors"].sha256 + ".incomplete")
    assert partial.stat().st_size >= 400_000
    assert repo.files["model.safetensors"].data.startswith(partial.read_bytes())


def test_offline_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NetworkError, match="HF_HUB_OFFLINE"):
        pull("rugpt3small")


def test_an_unknown_model_is_named(hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        pull("nobody/nothing")
    assert "No model 'nobody/nothing'" in caught.value.message("en")
    assert "владелец/имя" in caught.value.message("ru")


def test_the_old_org_name_is_tried_when_the_new_one_is_missing(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    hub.add_repo("sberbank-ai/rugpt3small_based_on_gpt2", tiny_model_dir)
    snap = pull("rugpt3small")
    assert snap.parent.parent == _repo_dir(cache, "sberbank-ai/rugpt3small_based_on_gpt2")
    assert find_local("ai-forever/rugpt3small_based_on_gpt2") == snap


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(hub: FakeHub, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    pull("rugpt3small", hub=HubSettings(token="hf_secret"))
    on_hub = [r for r in hub.requests() if not r.path.startswith("/blobs/")]
    on_cdn = hub.requests(contains="/blobs/")
    assert on_hub and all(r.headers.get("authorization") == "Bearer hf_secret" for r in on_hub)
    assert on_cdn and all("authorization" not in r.headers for r in on_cdn)


def test_endpoint_setting_wins_over_the_environment(
    hub: FakeHub, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    the_plan = plan("rugpt3small", hub=HubSettings(endpoint=hub.url + "/"))
    assert the_plan.endpoint == hub.url
    with pytest.raises(Exception, match="not a web address"):
        plan("rugpt3small", hub=HubSettings(endpoint="hf-mirror.com"))


def test_models_fetched_by_huggingface_hub_are_reused_and_vice_versa(
    hub: FakeHub, cache: Path, tiny_model_dir: Path
) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    hub.add_repo(REPO_ID, tiny_model_dir)
    hub.add_repo("someone/other", tiny_model_dir)
    # Fetched by another tool: GPT Desk checks it and downloads nothing.
    snapshot_download(REPO_ID, cache_dir=cache, endpoint=hub.url)
    hub.log.clear()
    pull("rugpt3small")
    assert not hub.requests("GET", "/resolve/") and not hub.requests("GET", "/blobs/")
    # Fetched by GPT Desk: huggingface_hub finds every file in place.
    pull("someone/other")
    hub.log.clear()
    path = hf_hub_download("someone/other", "model.safetensors", cache_dir=cache, endpoint=hub.url)
    assert Path(path).read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert not hub.requests("GET")


def test_speed_and_time_left_come_from_the_last_seconds(hub: FakeHub, tiny_model_dir: Path) -> None:
    hub.add_repo(REPO_ID, tiny_model_dir)
    the_plan = plan("rugpt3small")
    now = [0.0]
    seen: list[DownloadProgress] = []
    meter = Meter(the_plan, seen.append, lambda: now[0])
    meter.emit(force=True, phase="download")
    for _ in range(20):  # 100 kB every half second: 200 kB/s
        now[0] += 0.5
        meter.received(100_000)
        meter.at(meter.net, phase="download")
    last = seen[-1]
    assert last.speed == pytest.approx(200_000)
    assert last.eta == pytest.approx((the_plan.total_bytes - 2_000_000) / 200_000)
    assert "200 kB/s" in last.text().en and "left" in last.text().en
    assert "200 кБ/с" in last.text().ru and "осталось" in last.text().ru
    now[0] += 0.5
    meter.pause()  # a retry: no stale speed
    meter.at(meter.net, force=True, phase="download")
    assert seen[-1].speed is None and seen[-1].eta is None


# -- the command ------------------------------------------------------------------------------------


def test_models_pull_ls_rm_on_the_command_line(hub: FakeHub, cache: Path, tiny_model_dir: Path) -> None:
    from gptdesk.cli.main import main

    hub.add_repo("someone/tiny-gpt2", tiny_model_dir)
    out, err = io.StringIO(), io.StringIO()
    assert main(["models", "pull", "someone/tiny-gpt2"], out, err) == 0, err.getvalue()
    snap = Path(out.getvalue().strip())
    assert (snap / "config.json").exists()
    lines = err.getvalue().splitlines()
    assert any("model.safetensors" in line and "100.0%" in line and "█" in line for line in lines), lines
    assert "gptdesk generate --model someone/tiny-gpt2" in err.getvalue()

    listing = io.StringIO()
    assert main(["models"], listing, io.StringIO()) == 0
    row = next(line for line in listing.getvalue().splitlines() if "someone/tiny-gpt2" in line)
    assert "downloaded" in row
    as_json = io.StringIO()
    assert main(["models", "--json", "ls"], as_json, io.StringIO()) == 0
    data = json.loads(as_json.getvalue())
    model = next(m for m in data["models"] if m["id"] == "someone/tiny-gpt2")
    assert model["status"] == "ready" and model["local_path"] == str(snap)
    assert model["disk_bytes"] == sum(p.stat().st_size for p in tiny_model_dir.iterdir())
    assert set(model["ram_bytes"]) == {"float32", "bfloat16", "q8_0"}

    gone = io.StringIO()
    assert main(["models", "rm", "someone/tiny-gpt2"], gone, io.StringIO()) == 0
    assert f"{format_bytes(model['disk_bytes'])} freed" in gone.getvalue()
    assert not _repo_dir(cache, "someone/tiny-gpt2").exists()
    err = io.StringIO()
    assert main(["models", "rm", "embedded"], io.StringIO(), err) == 2
    assert "cannot be deleted" in err.getvalue()


def test_the_terminal_bar_redraws_one_line() -> None:
    from gptdesk.cli.models import TerminalProgress

    stream = io.StringIO()
    bar = TerminalProgress(stream, tty=True)
    base = DownloadProgress("a/b", "download", "model.safetensors", 2, 3, 1_500_000_000, 3_000_000_000, 0, 0)
    bar(base)
    bar(DownloadProgress("a/b", "download", "model.safetensors", 2, 3, 1_600_000_000, 3_000_000_000, 0, 0, 5e6, 280))
    bar(DownloadProgress("a/b", "done", "", 3, 3, 3_000_000_000, 3_000_000_000, 0, 0))
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "50.0%" in text and "5.0 MB/s" in text and "ETA 4 min 40 s" in text and "1.6 GB/3.0 GB" in text


def test_generate_downloads_a_missing_model_with_progress_first(hub: FakeHub, tiny_model_dir: Path) -> None:
    import io

    from gptdesk.cli.main import main

    hub.add_repo(REPO_ID, tiny_model_dir)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["generate", "Привет", "--model", "rugpt3small", "--engine", "transformers", "--max-new-tokens", "3"], out, err
    )
    assert code == 0, err.getvalue()
    assert "downloading it" in err.getvalue()
    assert "100.0%" in err.getvalue()  # the terminal progress reached the end
    assert out.getvalue().startswith("Привет")
    assert find_local("rugpt3small") is not None
