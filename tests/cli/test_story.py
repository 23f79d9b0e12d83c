"""`gptdesk story` round trips on the embedded model, on the reference engine and the default (llama.cpp)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gptdesk.cli.main import main


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the module: the default engine converts the embedded model to GGUF once.
    return tmp_path_factory.mktemp("story-cache")


@pytest.fixture
def cli(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(shared_cache))

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), out, err)
        return code, out.getvalue(), err.getvalue()

    return run


# --engine transformers is the reference; "auto" is what users get (llama.cpp on the CPU).
@pytest.mark.parametrize("engine", ["transformers", "auto"])
def test_every_story_command_round_trips(cli: Any, engine: str, tmp_path: Path) -> None:
    gen = ["--engine", engine, "--max-new-tokens", "6"]
    code, out, err = cli("story", "new", "Однажды весной", *gen, "--seed", "3", "--json")
    assert code == 0, err
    made = json.loads(out)
    story_id, (first,) = made["id"], made["nodes"]
    assert first["parent"] == 1 and first["seed"] == 3 and first["text"]
    assert first["engine"] == ("transformers" if engine == "transformers" else "llamacpp")

    code, out, err = cli("story", "grow", str(story_id), "--n", "3", *gen, "--json")
    assert code == 0, err
    children = json.loads(out)["nodes"]
    assert [c["parent"] for c in children] == [first["id"]] * 3
    assert [c["sequence"] for c in children] == [0, 1, 2]

    code, out, err = cli("story", "show", str(story_id), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["id"] == story_id and shown["current"] == children[0]["id"]
    assert [n["id"] for n in shown["nodes"]] == [1, first["id"], *[c["id"] for c in children]]
    for node in shown["nodes"][1:]:
        assert node["text"] == "".join(t["text"] for t in node["tokens"])
        for token in node["tokens"]:
            assert set(token) == {"id", "text", "logprob", "alternatives"}
            assert isinstance(token["logprob"], float)
            assert all(set(a) == {"id", "text", "logprob"} for a in token["alternatives"])
            assert token["alternatives"]

    target = children[1]
    other = next(a for a in target["tokens"][1]["alternatives"] if a["id"] != target["tokens"][1]["id"])
    code, out, err = cli(
        "story", "branch", str(story_id), "--node", str(target["id"]), "--at", "1", "--token", str(other["id"]),
        *gen, "--json",
    )  # fmt: skip
    assert code == 0, err
    (branched,) = json.loads(out)["nodes"]
    assert branched["parent"] == first["id"] and branched["kind"] == "branch"
    assert [t["id"] for t in branched["tokens"][:2]] == [target["tokens"][0]["id"], other["id"]]

    code, out, err = cli("story", "show", str(story_id))
    assert code == 0, err
    assert f"#{branched['id']}" in out and out.rstrip().endswith("Однажды весной" + first["text"] + branched["text"])

    code, txt, err = cli("story", "export", str(story_id), "--format", "txt")
    assert code == 0 and txt == "Однажды весной" + first["text"] + branched["text"] + "\n"
    code, md, err = cli("story", "export", str(story_id), "--node", str(children[2]["id"]), "--format", "md")
    assert code == 0 and md.startswith("# Однажды весной\n\n**Однажды весной**" + first["text"] + children[2]["text"])
    saved = tmp_path / "story.json"
    code, _, err = cli("story", "export", str(story_id), "--format", "json", "--output", str(saved))
    assert code == 0, err
    code, out, err = cli("story", "import", str(saved))
    assert code == 0, err
    copy_id = int(out)
    code, out, _ = cli("story", "show", str(copy_id), "--json")
    assert [n["text"] for n in json.loads(out)["nodes"]] == [n["text"] for n in shown["nodes"]] + [branched["text"]]

    code, out, err = cli("story", "mark", str(story_id), "--node", str(children[2]["id"]), "--bookmark", "--hide")
    assert code == 0 and "bookmark on, hidden" in out, err
    code, out, _ = cli("story", "show", str(story_id), "--json")
    marked = next(n for n in json.loads(out)["nodes"] if n["id"] == children[2]["id"])
    assert marked["bookmark"] is True and marked["hidden"] is True

    code, out, _ = cli("story", "ls", "--json")
    assert code == 0 and {s["id"] for s in json.loads(out)} == {story_id, copy_id}
    code, _, err = cli("story", "rm", str(copy_id))
    assert code == 0, err
    code, out, _ = cli("story", "ls")
    assert code == 0 and out.split()[0] == str(story_id) and len(out.strip().splitlines()) == 1


def test_bad_input_exits_2_with_the_fix_and_loads_no_model(cli: Any, tmp_path: Path) -> None:
    code, out, err = cli("story", "new", "Однажды", "--engine", "transformers", "--max-new-tokens", "4", "--json")
    assert code == 0, err
    node = json.loads(out)["nodes"][0]
    story = str(json.loads(out)["id"])
    cases = [
        (["branch", story, "--node", str(node["id"]), "--at", "40", "--token", "x"], "--at 40 is not one of them"),
        (["branch", story, "--node", str(node["id"]), "--at", "0", "--token", "нет"], "did not offer 'нет'"),
        (["branch", story, "--node", "1", "--at", "0", "--token", "x"], "is the root of story"),
        (["grow", "77"], "There is no story 77"),
        (["grow", story, "--n", "40"], "--n 40"),
        (["rm", story, "--node", "1"], "gptdesk story rm"),
        (["show", "12"], "gptdesk story ls"),
    ]
    for argv, message in cases:
        code, _, err = cli("story", *argv)
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
    code, _, _ = cli("story", "rm", story, "--node", str(node["id"]))
    assert code == 0
    code, _, err = cli("story", "grow", story, "--node", str(node["id"]))
    assert code == 2 and f"has no node {node['id']} (it was deleted" in err

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "gptdesk-story", "version": 1, "nodes": [', encoding="utf-8")
    newer = tmp_path / "newer.json"
    newer.write_text('{"format": "gptdesk-story", "version": 2, "nodes": []}', encoding="utf-8")
    cases = [
        (broken, "not valid JSON (Expecting value at line 1"),
        (newer, "written by a newer GPT Desk (story format 2"),
        (tmp_path / "none.json", "Cannot read the story file"),
    ]
    for path, message in cases:
        code, _, err = cli("story", "import", str(path))
        assert code == 2, err
        assert message in err, err
    code, out, _ = cli("story", "ls", "--json")
    assert [s["id"] for s in json.loads(out)] == [int(story)]


def test_last_names_the_story_changed_most_recently(cli: Any, tiny_model_dir: Path) -> None:
    code, _out, err = cli("story", "show", "last")
    assert code == 2 and "There is no story yet" in err and "gptdesk story new" in err
    model = ["--model", str(tiny_model_dir), "--max-new-tokens", "3"]
    assert cli("story", "new", "Раз", *model)[0] == 0
    assert cli("story", "new", "Два", *model)[0] == 0
    code, out, _ = cli("story", "show", "last", "--json")
    assert code == 0 and json.loads(out)["id"] == 2
    assert cli("story", "grow", "1", *model)[0] == 0  # story 1 is now the one changed most recently
    code, out, _ = cli("story", "export", "last", "--format", "txt")
    assert code == 0 and out.startswith("Раз")
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal, as for any malformed argument
        cli("story", "show", "first")
    assert refused.value.code == 2
