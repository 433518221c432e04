"""Split text into sentences for streaming synthesis: the first sentence can play while later ones render."""

from __future__ import annotations

import re

# A sentence ends after . ! ? … (or their CJK forms) and any closing quotes, before a space; or at a line
# break. CJK full stops end a sentence even without a space.
_END = re.compile(r"[.!?…]+[\"')\]»”’]*(?=\s)|[。！？]+[」』”’)]*|\n+")
_SOFT = re.compile(r"(?<=[,;:、，；：])\s+")


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences of `text`, none longer than `max_chars` (long ones are cut at commas, then spaces)."""
    pieces: list[str] = []
    start = 0
    for match in [*_END.finditer(text), None]:
        end = match.end() if match else len(text)
        sentence = text[start:end].strip()
        start = end
        if sentence:
            pieces.extend(_cut(sentence, max_chars))
    return pieces


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out: list[str] = []
    current = ""
    for part in _SOFT.split(sentence) if _SOFT.search(sentence) else sentence.split(" "):
        candidate = f"{current} {part}".strip()
        if len(candidate) > max_chars and current:
            out.append(current)
            current = part
        else:
            current = candidate
        while len(current) > max_chars:  # one unbroken run of characters
            out.append(current[:max_chars])
            current = current[max_chars:]
    if current:
        out.append(current)
    return out


def split_complete(text: str) -> tuple[str, str]:
    """(the complete sentences at the start of `text`, the unfinished rest) for text that still grows."""
    last = None
    for last in _END.finditer(text):  # noqa: B007 - only the last boundary matters
        pass
    if last is None:
        return "", text
    return text[: last.end()], text[last.end() :]


FIRST_CLAUSE_AFTER = 60  # characters: a longer first sentence is spoken clause by clause


def speech_chunks(text: str) -> list[str]:
    """Pieces to synthesize one by one for streaming: sentences, with a long first sentence split at its
    first clause boundary (comma, semicolon, colon). The listener hears the first words after one short
    synthesis instead of a whole long sentence; a clause boundary is where a speaker pauses anyway, so
    the split costs no naturalness."""
    pieces = split_sentences(text)
    if pieces and len(pieces[0]) > FIRST_CLAUSE_AFTER:
        first = pieces[0]
        match = _SOFT.search(first, 10)
        if match is not None and match.start() < len(first) - 10:
            pieces[0:1] = [first[: match.start()].strip(), first[match.end() :].strip()]
    return pieces
