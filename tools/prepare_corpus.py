"""Clean ../shared/data/ru_literature into training and held-out text for the embedded model."""

from __future__ import annotations

import argparse
import html
import json
import re
import unicodedata
from pathlib import Path

# Whole works kept out of training: the held-out prose on which bits per character are measured.
HELDOUT = (
    "prose/Chekhov/Дама с собачкой.txt",
    "prose/Chekhov/Палата №6.txt",
    "prose/Tolstoy/Хаджи-Мурат.txt",
    "prose/Turgenev/Ася.txt",
    "prose/Gogol/Нос.txt",
    "prose/Dostoevsky/Вечный муж.txt",
    "prose/Gorky/Коновалов.txt",
    "prose/Pushkin/Пиковая дама.txt",
)

# A heading that starts the modern editorial apparatus; everything after it is dropped.
_EDITORIAL_HEADING = re.compile(r"^(Комментари[ийя]|Примечани[яе]|Указатель имен)\.?$")
# Letter-spaced emphasis: «р а з р я д к а» -> «разрядка» (four or more single letters).
_SPACED = re.compile(r"(?<![\w])((?:[А-Яа-яЁё] ){3,}[А-Яа-яЁё])(?![\w])")
# Footnote markers: [12], {3}, *, **, ***, a digit glued to the end of a word.
_FOOTNOTE_MARK = re.compile(r"\[\d+\]|\{\d+\}|(?<=[А-Яа-яЁё.,;:!?»])\*+\d*|(?<=[а-яё»])\d{1,2}(?=[\s.,;:!?]|$)")
# Translation footnotes such as «Их следовало бы выдумать (фр.).»
_TRANSLATION_NOTE = re.compile(r"\((фр|франц|нем|лат|англ|итал|греч|польск|укр|исп)\.\)\.?$")
# Characters a Russian literary text legitimately uses; anything else is mojibake or markup.
_ALLOWED = re.compile(
    r"[^0-9A-Za-zА-Яа-яЁёÀ-ÿŒœ"
    r" .,;:!?()\-—–«»\"'…„“”’/%№§+=]"
)
_SPACED_DASH = re.compile(r"(^|\s)[-–](\s)")
_SPACES = re.compile(r"[ \t\u00a0\u2009\u200a]+")


def clean_text(raw: str) -> str:
    """Return the literary text of one work: one paragraph or verse per line, no apparatus."""
    text = html.unescape(raw)
    text = unicodedata.normalize("NFC", text)
    # Stress marks are combining accents after NFC; drop them so words match the dictionary.
    text = text.replace("\u0301", "").replace("\u0300", "")
    out: list[str] = []
    for line in text.splitlines():
        line = _SPACES.sub(" ", line).strip()
        if _EDITORIAL_HEADING.match(line):
            break
        if not line or re.fullmatch(r"[\dIVXLC.\s*=#_~-]+", line):
            continue  # empty lines, chapter and footnote numbers, rules such as =====
        if _TRANSLATION_NOTE.search(line) and len(line) < 300:
            continue
        line = _SPACED.sub(lambda m: m.group(1).replace(" ", ""), line)
        line = _FOOTNOTE_MARK.sub("", line)
        line = line.replace("--", "—").replace("`", "'")
        # Dialogue and parenthetical dashes come as "-", "–" or "—": one form helps the model.
        line = _SPACED_DASH.sub(r"\1—\2", line)
        line = _ALLOWED.sub("", line)
        line = _SPACES.sub(" ", line).strip()
        if len(re.findall(r"[А-Яа-яЁё]", line)) < max(1, len(line) // 4):
            continue  # lines that are mostly foreign text or debris
        out.append(line)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=Path("../shared/data/ru_literature"))
    parser.add_argument("--out", type=Path, default=Path("build/corpus"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in args.source.rglob("*.txt"))
    train: list[str] = []
    heldout: list[str] = []
    stats = {"train_works": 0, "heldout_works": 0, "raw_chars": 0}
    for path in files:
        rel = path.relative_to(args.source).as_posix()
        raw = path.read_text(encoding="utf-8")
        stats["raw_chars"] += len(raw)
        doc = clean_text(raw)
        if not doc:
            continue
        if rel in HELDOUT:
            heldout.append(doc)
            stats["heldout_works"] += 1
        else:
            train.append(doc)
            stats["train_works"] += 1
    missing = set(HELDOUT) - {p.relative_to(args.source).as_posix() for p in files}
    if missing:
        raise SystemExit(f"held-out works not found: {sorted(missing)}")
    # Documents are separated by a form feed; the trainer turns it into the end-of-text token.
    (args.out / "train.txt").write_text("\f".join(train), encoding="utf-8")
    (args.out / "heldout.txt").write_text("\f".join(heldout), encoding="utf-8")
    stats["train_chars"] = sum(map(len, train))
    stats["heldout_chars"] = sum(map(len, heldout))
    (args.out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=1))
    print(json.dumps(stats, ensure_ascii=False))


if __name__ == "__main__":
    main()
