"""The benchmark library's own rules (issue 22): where speech ends, memory growth as a slope, and how the
real recordings' reference turns are read (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import synthesize
from voxhost.audio import g711
from voxhost.benchmarks.common import SPEECH_FLOOR, slope, speech_end
from voxhost.benchmarks.real_calls import segment_turns, sphere_channels, trs_turns


def test_speech_ends_at_the_last_sample_above_minus_40_dbfs() -> None:
    speech = synthesize("Please turn off the lights in the living room.")
    rate = speech.sample_rate
    tail = np.zeros(rate // 2, np.float32)  # half a second of silence after the speech
    padded = np.concatenate([speech.audio, tail])
    end = speech_end(padded, rate)
    cut = round(end * rate)
    assert end <= speech.seconds  # the added silence is never speech
    assert abs(padded[cut - 1]) > SPEECH_FLOOR  # the last sample counted is loud enough
    assert np.all(np.abs(padded[cut:]) <= SPEECH_FLOOR)  # and nothing after it is
    assert speech_end(tail, rate) == 0.0  # silence alone has no speech
    # Piper's own buffer ends in a quiet tail: the end of speech comes before the end of the buffer
    assert speech_end(speech.audio, rate) < speech.seconds


def test_growth_is_the_slope_over_every_sample_not_two_of_them() -> None:
    calls = list(range(0, 220, 20))
    steady = [200e6 + 1000 * c for c in calls]  # 1 kB a call
    exact = slope(calls, steady)
    assert exact is not None
    assert abs(exact - 1000) < 1e-3
    # one sample on a level 18 MB higher moves the difference of the two ends by all of it, the slope
    # by a fraction: the figure is the trend, not where the last sample lands
    jumped = [*steady[:-1], steady[-1] + 18e6]
    ends = (jumped[-1] - jumped[0]) / (calls[-1] - calls[0])
    fitted = slope(calls, jumped)
    assert fitted is not None
    assert abs(fitted - 1000) < abs(ends - 1000) / 2
    assert slope(calls[:2], steady[:2]) is None  # two samples are not a trend


# A Transcriber file as its examples are written (ISO-8859-1, a DTD it does not ship, overlapping speech
# as one turn of two speakers, non-speech marks in braces)
TRS = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE Trans SYSTEM "trans-14.dtd">
<Trans audio_filename="call" version="1">
<Speakers><Speaker id="spk1" name="a"/><Speaker id="spk2" name="b"/></Speakers>
<Episode><Section type="report" startTime="0" endTime="9">
<Turn speaker="spk1" startTime="0" endTime="2.5"><Sync time="0"/>{inhale} Bonjour, \xe7a va ?</Turn>
<Turn speaker="spk1 spk2" startTime="2.5" endTime="4"><Sync time="2.5"/>
<Who nb="1"/> You know. <Who nb="2"/> I know. <Event desc="rire"/> Right.</Turn>
<Turn startTime="4" endTime="6"><Background time="4" type="music" level="high"/></Turn>
<Turn speaker="spk2" startTime="6" endTime="9"><Sync time="6"/>{laugh}</Turn>
</Section></Episode></Trans>
""".encode("latin-1")


def test_transcriber_turns_give_each_speaker_of_an_overlap_its_own_words() -> None:
    turns = [(t.start, t.end, t.speaker, t.text) for t in trs_turns(TRS)]
    assert turns == [
        (0.0, 2.5, "spk1", "Bonjour, \xe7a va ?"),  # read as Latin-1, the mark left out
        (2.5, 4.0, "spk1", "You know."),
        (2.5, 4.0, "spk2", "I know. Right."),  # the text after an event stays the speaker's
    ]  # music has no speaker; a laugh alone is no turn


def test_segment_files_read_one_turn_a_line() -> None:
    turns = segment_turns("0,6.3,speakerA\n6.3,11.3,speakerB\n\n11.3,15.8,speakerA\n")
    assert [(t.start, t.end, t.speaker) for t in turns] == [
        (0.0, 6.3, "speakerA"),
        (6.3, 11.3, "speakerB"),
        (11.3, 15.8, "speakerA"),
    ]


def _sphere(fields: dict[str, str], payload: bytes) -> bytes:
    header = (
        b"NIST_1A\n   1024\n"
        + b"".join(
            f"{name} -{'i' if value.isdigit() else 's' + str(len(value))} {value}\n".encode()
            for name, value in fields.items()
        )
        + b"end_head\n"
    )
    return header.ljust(1024, b" ") + payload


def test_a_two_channel_sphere_file_is_read_a_channel_each() -> None:
    """A call recorded a speaker a channel (as CallFriend's): each channel comes back apart, in order;
    the control: a file that is not mu-law is refused, not read as noise."""
    rate = 8000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype(np.int16)
    quiet = np.zeros_like(tone)
    interleaved = np.stack([quiet, tone], axis=1).reshape(-1)
    fields = {
        "sample_count": str(rate),
        "channel_count": "2",
        "sample_coding": "ulaw",
        "sample_rate": str(rate),
    }
    samples, found_rate = sphere_channels(_sphere(fields, g711.encode(interleaved, "pcmu")))
    assert found_rate == rate
    assert samples.shape == (rate, 2)
    assert np.abs(samples[:, 0]).max() < 0.001
    assert np.abs(samples[:, 1]).max() == pytest.approx(0.5, abs=0.02)
    assert np.corrcoef(samples[:, 1], tone)[0, 1] > 0.99
    with pytest.raises(ValueError, match="mu-law"):
        sphere_channels(_sphere({**fields, "sample_coding": "pcm"}, interleaved.tobytes()))


def test_a_known_speakers_sample_is_a_piece_of_their_speech_the_conversation_does_not_hold() -> None:
    """`enrolled_voices`: each voice's longest solo piece is held out as its sample (a known speaker's
    reference); the conversation is `real_voices`' less those pieces, the same turns drawn otherwise, and
    none of a sample's audio is in it. A voice with no piece of 2 s to spare is refused."""
    from voxhost.benchmarks.conversations import Conversation, Turn
    from voxhost.benchmarks.real_calls import RealRecording, enrolled_voices, real_voices

    rate = 16000
    audio = (0.1 + 0.5 * np.arange(40 * rate) / (40 * rate)).astype(np.float32)  # each sample its own value
    turns = [Turn(0, 9, "a", ""), Turn(9, 13, "b", ""), Turn(12, 14, "a", ""), Turn(14, 24, "b", ""),
             Turn(24, 27.5, "a", ""), Turn(28, 29.2, "c", "")]  # fmt: skip
    recording = RealRecording("room", Conversation(audio, turns), "meeting")
    whole = real_voices([recording], [("room", "a"), ("room", "b")], seed=1)
    talk, samples = enrolled_voices([recording], [("room", "a"), ("room", "b")], seed=1)
    assert set(samples) == {"a", "b"}
    for speaker, sample in samples.items():
        assert 2 * rate <= len(sample) <= 6 * rate
        start = int(np.flatnonzero(audio == sample[0])[0])  # where in the recording it was said
        assert np.array_equal(audio[start : start + len(sample)], sample)
        assert not np.isin(sample, talk.audio).any()  # the conversation does not hold it
        assert np.isin(sample, whole.audio).all()  # (which the whole one does: the control)
        pieces = [sum(t.speaker == speaker for t in c.turns) for c in (talk, whole)]
        assert pieces[0] == pieces[1] - 1
    heard = {t.speaker for t in talk.turns}
    assert heard == {"a", "b"}
    with pytest.raises(ValueError, match="c has no piece"):
        enrolled_voices([recording], [("room", "a"), ("room", "c")])
