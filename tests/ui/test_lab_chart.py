"""The next-token chart labels every candidate: none dropped at the ends, none overlapping."""

from __future__ import annotations

from itertools import combinations
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from gptdesk.lab.nextview import Candidate, NextTokenView
from gptdesk.ui.lab.charts import NextTokenChart

# Pieces as the embedded model gives them: long words with a leading space first (they were the ones
# left without a label), and long ones last (they overlapped: "·морозива", "ниянхолодром").
LONG = [" морозива", " холодильника", " мороженого", " ниянхолодром", " столица", ",", " и", "-"]


def _view(pieces: list[str]) -> NextTokenView:
    n = len(pieces)
    candidates = [
        Candidate(
            token_id=i, piece=piece, raw=(n - i) / (n * 4), final=(n - i) / (n * 3), status="kept", penalized=False
        )
        for i, piece in enumerate(pieces)
    ]
    return NextTokenView(
        candidates=candidates,
        entropy_bits=3.0,
        in_play=n,
        mass_kept=1.0,
        greedy_id=0,
        greedy_piece=pieces[0],
        greedy_final=candidates[0].final,
        raw_entropy_bits=3.2,
        top_k_rank=None,
        top_p_rank=None,
        mode="sample",
    )


def _drawn(qtbot: Any, pieces: list[str], width: int) -> tuple[NextTokenChart, list[Any]]:
    chart = NextTokenChart()
    qtbot.addWidget(chart)
    chart.resize(width, 380)
    chart.show()
    chart.set_view(_view(pieces))
    for _ in range(3):  # the axis takes the height its labels need, then paints again
        chart.grab()
        QApplication.processEvents()
    return chart, chart.axis.drawn


@pytest.mark.parametrize("width", [760, 420])
def test_every_candidate_has_a_label_and_none_overlap(qtbot: Any, width: int) -> None:
    pieces = [*LONG[:4], *(f" слово{i}" for i in range(21)), *LONG[3:]]  # 30 candidates, as the lab shows
    chart, drawn = _drawn(qtbot, pieces, width)
    assert len(drawn) == len(pieces)
    assert all(text for text, _rect in drawn)
    assert chart.axis.upright  # 30 words do not fit across
    # Whole where they fit, elided (never cut to nothing) where they do not.
    assert drawn[0][0] == "·морозива" and drawn[-1][0] == "-"
    for (_a, first), (_b, second) in combinations(drawn, 2):
        assert not first.intersects(second)
    # Inside the axis (pyqtgraph clips there): the first label is not cut off at the left.
    bounds = chart.axis.boundingRect()
    assert all(bounds.contains(rect) for _text, rect in drawn)
    # The labels' order follows the bars.
    assert [rect.center().x() for _t, rect in drawn] == sorted(rect.center().x() for _t, rect in drawn)


def test_few_short_labels_stay_across(qtbot: Any) -> None:
    chart, drawn = _drawn(qtbot, [" и", ",", ".", " в", " не"], 760)
    assert not chart.axis.upright
    assert [text for text, _rect in drawn] == ["·и", ",", ".", "·в", "·не"]
    for (_a, first), (_b, second) in combinations(drawn, 2):
        assert not first.intersects(second)
