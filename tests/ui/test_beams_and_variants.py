"""Beam search and variants in the window: the leading beam shown live (replaced, not appended) and
variants growing side by side while the engine writes them."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from gptdesk.engine.base import LeadingBeam, TokenEvent
from tests.ui.conftest import SCREENSHOTS
from tests.ui.fake_engine import FakeEngine


def test_the_leading_beam_is_shown_live_and_replaced_then_the_final_beams(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.06)  # slower than the window's display batches: every leader is seen
    window = make_window(engine)
    window.params.set_values({"do_sample": False, "num_beams": 4, "num_return_sequences": 2, "max_new_tokens": 9})
    window.prompt_edit.setPlainText("Жили-были")
    shown: list[tuple[str, str, bool, str]] = []

    def on_beam(beam: LeadingBeam) -> None:
        assert isinstance(beam, LeadingBeam)
        shown.append((beam.text, window.output.text(0), window.generating, window.view.beam_label.text()))

    window.leading_beam_shown.connect(on_beam)
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.generate()
    finished = blocker.args[0]

    assert len(shown) >= 5, shown  # the leader was shown as the search ran, not once at the end
    for beam_text, output_text, generating, label in shown:
        assert output_text == beam_text  # the pane shows exactly the leader: replaced, never appended
        assert generating and label.startswith("Beam search, step ")
    texts = [text for text, *_ in shown]
    assert any(not new.startswith(old) for old, new in pairwise(texts))  # overtaken
    assert set(texts) <= set(engine.beam_steps)
    # Then the best beams, one variant each, replace the leader.
    assert window.output.texts() == finished.texts and len(finished.texts) == 2
    assert window.view.beam_label.text() == "Beam search ended: the best beams"
    record = window.store.find()[0]
    assert record.texts == finished.texts and record.status == "finished"
    SCREENSHOTS.mkdir(exist_ok=True)
    assert window.grab().save(str(SCREENSHOTS / "beam_search_final.png"))


def test_stop_ends_a_beam_search_within_a_step_and_keeps_the_best_so_far(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.03)
    window = make_window(engine)
    window.params.set_values({"do_sample": False, "num_beams": 3, "max_new_tokens": 400})
    window.prompt_edit.setPlainText("Стоп")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.generate()
        qtbot.waitSignal(window.leading_beam_shown, timeout=5000).wait()
        qtbot.waitUntil(lambda: window.generation.current is not None and window.generation.current.tokens >= 5)
        steps = window.generation.current.tokens
        window.stop()
    finished = blocker.args[0]
    assert finished.finish_reason == "cancelled"
    assert len(engine.beam_steps) - steps <= 2  # the engine noticed Stop within a step (plus one in flight)
    assert window.output.text(0) == finished.text == engine.beam_steps[-1]


def test_variants_grow_side_by_side_while_generating(qtbot: Any, make_window: Any) -> None:
    engine = FakeEngine(delay=0.04, batched=True)
    window = make_window(engine)
    window.params.set_values({"do_sample": True, "seed": 3, "num_return_sequences": 3, "max_new_tokens": 12})
    window.prompt_edit.setPlainText("Однажды")
    snapshots: list[list[int]] = []

    def on_token(_event: TokenEvent) -> None:
        if window.generating:
            snapshots.append([len(window.output.columns.text(i)) for i in range(3)])

    window.token_received.connect(on_token)
    with qtbot.waitSignal(window.generation_finished, timeout=10_000) as blocker:
        assert window.generate()
        qtbot.waitUntil(lambda: all(window.output.text(i) for i in range(3)), timeout=5000)
        assert window.generating and window.view.showing_columns
        assert all(column.isVisible() for column in window.output.columns.columns)
        SCREENSHOTS.mkdir(exist_ok=True)
        assert window.grab().save(str(SCREENSHOTS / "variants_side_by_side.png"))
    finished = blocker.args[0]
    # All three columns grew during the run, together (not one after another).
    grown = [s for s in snapshots if all(n > len("Однажды") for n in s)]
    assert grown and grown[0] != snapshots[-1]
    assert [window.output.columns.text(i) for i in range(3)] == ["Однажды" + t for t in finished.texts]
    # Clicking into a column selects that variant for Continue and the token inspector.
    window.output.columns.columns[2].setFocus()
    qtbot.waitUntil(lambda: window.output.currentIndex() == 2, timeout=2000)
    assert window.inspector._variant == 2
