"""The benchmark library's own rules (issue 22): where speech ends, and memory growth as a slope."""

from __future__ import annotations

import numpy as np

from conftest import synthesize
from voxhost.benchmarks.common import SPEECH_FLOOR, slope, speech_end


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
