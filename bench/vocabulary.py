"""The server's vocabulary (`--vocabulary`): how often Whisper gets a home's names right with it and without.

    python bench/vocabulary.py --json vocabulary.json

Home Assistant-like voice commands that name people, rooms and devices of a home (Irish and Spanish first
names, brand names of smart-home devices, rooms) are synthesized with the Piper voice the tests use
(noise off: the same audio every run, bench/long_speech.py) and transcribed in this process by the same
model loaded twice: once plain, once with the home's names as its vocabulary (the engine setting
`--vocabulary` becomes, exactly as in `voxhost serve`). Two commands name nothing, to see that the
vocabulary does not hurt them. Reported: the names heard right (spelt as in the vocabulary), the word
error rate against the script, names heard that were not said, and the seconds per command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from long_speech import speak
from voxhost.engines import EngineConfig
from voxhost.engines.base import ASREngine
from voxhost.harness.wer import word_errors, words
from voxhost.manager.registry import parse_entry
from voxhost.results import TranscribeOptions

# A home's names, as its owner would list them: people, then devices, then rooms.
VOCABULARY = (
    "Siobhan", "Niamh", "Saoirse", "Ciaran", "Joaquin", "Nguyen", "Xiomara",
    "Roomba", "Sonos", "Nanoleaf", "Ecobee", "Shelly", "Tasmota", "Wemo",
    "Scullery", "Mudroom", "Conservatory",
)  # fmt: skip
COMMANDS = (
    "Turn on the lights in Siobhan's room.",
    "Open the garage door for Niamh.",
    "Is Saoirse home yet?",
    "Close the blinds in Ciaran's bedroom.",
    "Tell Joaquin that dinner is ready.",
    "Lock the door of the Nguyen office.",
    "Turn on the fan in Xiomara's room.",
    "Start the Roomba in the kitchen.",
    "Play some jazz on the Sonos in the conservatory.",
    "Dim the Nanoleaf panels in the den.",
    "Set the Ecobee to eco mode.",
    "Turn off the Shelly switch in the mudroom.",
    "Switch on the Tasmota plug in the pantry.",
    "Is the Wemo in the scullery on?",
    "Turn off all the lights.",
    "What is the weather like tomorrow?",
)


def _plain(text: str) -> list[str]:
    """The words of `text`, a possessive as its name ("Siobhan's" is a hit for Siobhan)."""
    return [word.removesuffix("'s") for word in words(text)]


def names_in(text: str) -> list[str]:
    """The vocabulary's names that `text` says, spelt as in the vocabulary."""
    said = _plain(text)
    found = []
    for name in VOCABULARY:
        wanted = _plain(name)
        if any(said[i : i + len(wanted)] == wanted for i in range(len(said))):
            found.append(name)
    return found


def transcribe_all(engine: ASREngine, audio: list[Any]) -> tuple[list[str], float]:
    """Each command's transcript, and the mean seconds per command."""
    started = time.perf_counter()
    texts = [engine.transcribe(clip, TranscribeOptions()).text.strip() for clip in audio]
    return texts, (time.perf_counter() - started) / len(audio)


def score(texts: list[str]) -> dict[str, Any]:
    spoken = [set(names_in(command)) for command in COMMANDS]
    heard = [set(names_in(text)) for text in texts]
    errors = sum(word_errors(text, command) for text, command in zip(texts, COMMANDS, strict=True))
    return {
        "names": sum(map(len, spoken)),
        "names_right": sum(len(said & got) for said, got in zip(spoken, heard, strict=True)),
        "names_not_said": sum(len(got - said) for said, got in zip(spoken, heard, strict=True)),
        "word_errors": errors,
        "words": sum(len(words(command)) for command in COMMANDS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", "-m", default="tiny.en", help="model to measure (default: tiny.en)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: one per core)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the figures here ('-': stdout)"
    )
    args = parser.parse_args(argv)

    audio = [speak(command) for command in COMMANDS]
    spec = parse_entry(args.model)
    runs: dict[str, dict[str, Any]] = {}
    for label, vocabulary in (("without", ()), ("with", VOCABULARY)):
        config = EngineConfig(threads=args.threads, vocabulary=vocabulary)
        engine = spec.load(config)
        assert isinstance(engine, ASREngine), f"{args.model} is not a speech-to-text model"
        texts, seconds = transcribe_all(engine, audio)
        runs[label] = {**score(texts), "seconds_per_command": seconds, "transcripts": texts}

    table = Table(title=f"{args.model}: {len(COMMANDS)} commands, {len(VOCABULARY)} names in the vocabulary")
    for column in ("script", "without --vocabulary", "with --vocabulary"):
        table.add_column(column)
    for command, plain, helped in zip(
        COMMANDS, runs["without"]["transcripts"], runs["with"]["transcripts"], strict=True
    ):
        table.add_row(command, plain, helped)
    console = Console(width=160)
    console.print(table)
    for label, run in runs.items():
        console.print(
            f"{label:>7} the vocabulary: names right {run['names_right']}/{run['names']} "
            f"({run['names_not_said']} heard that were not said), "
            f"word error rate {run['word_errors'] / run['words']:.1%} ({run['word_errors']}/{run['words']}), "
            f"{run['seconds_per_command']:.2f} s per command"
        )
    if args.json is not None:
        text = json.dumps(
            {"model": args.model, "vocabulary": VOCABULARY, "commands": COMMANDS, **runs}, indent=2
        )
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
