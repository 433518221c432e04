"""The features CAM++ was trained on: 80-bin Kaldi log-mel filterbanks (25 ms frames every 10 ms, no
dither), mean-normalised per clip by the caller.

Computed here with numpy, every frame of a clip at once, as Kaldi's `compute-fbank-feats` (and
kaldi-native-fbank, which 3D-Speaker's recipes use) computes them with their defaults: snipped edges,
the DC offset removed per frame, pre-emphasis 0.97, Povey's window, a 512-point power spectrum, 80
triangular filters evenly spaced on the mel scale between 20 Hz and Nyquist, the log of each floored at
float32's epsilon. tests/engines/test_speaker_models.py checks them against kaldi-native-fbank (a
quarter of the time kaldi-native-fbank's frame-by-frame interface takes from Python)."""

from __future__ import annotations

from functools import cache

import numpy as np

SAMPLE_RATE = 16000
FRAME_SHIFT = 0.010  # seconds
FRAME_LENGTH = 0.025
BINS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
POVEY = 0.85  # Povey's window: the Hann window to this power
FLOOR = float(np.finfo(np.float32).eps)


def _mel(hz: np.ndarray | float) -> np.ndarray:
    return np.asarray(1127.0 * np.log(1.0 + np.asarray(hz) / 700.0))


@cache
def _constants(length: int, fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Povey's window of `length` samples and the (fft // 2 + 1, BINS) mel filters (Kaldi's `MelBanks`:
    triangles in mel, over the FFT bins below Nyquist)."""
    window = ((0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** POVEY).astype(np.float32)
    edges = _mel(np.array([LOW_HZ, SAMPLE_RATE / 2]))
    step = (edges[1] - edges[0]) / (BINS + 1)
    left = edges[0] + step * np.arange(BINS)[:, None]
    centre, right = left + step, left + 2 * step
    mel = _mel(np.arange(fft // 2) * SAMPLE_RATE / fft)[None, :]
    rising, falling = (mel - left) / (centre - left), (right - mel) / (right - centre)
    weights = np.where((mel > left) & (mel < right), np.minimum(rising, falling), 0.0)
    filters = np.zeros((fft // 2 + 1, BINS), dtype=np.float32)
    filters[: fft // 2] = weights.T
    return window, filters


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) float32 log-mel energies of float32 16 kHz mono audio in [-1, 1] (no frame for audio
    shorter than 25 ms)."""
    length, shift = round(FRAME_LENGTH * SAMPLE_RATE), round(FRAME_SHIFT * SAMPLE_RATE)
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(samples) < length:
        return np.zeros((0, BINS), dtype=np.float32)
    count = 1 + (len(samples) - length) // shift
    frames = np.lib.stride_tricks.sliding_window_view(samples, length)[::shift][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    emphasised = np.empty_like(frames)
    emphasised[:, 1:] = frames[:, 1:] - np.float32(PREEMPHASIS) * frames[:, :-1]
    emphasised[:, 0] = frames[:, 0] * np.float32(1.0 - PREEMPHASIS)
    fft = 1 << (length - 1).bit_length()  # the next power of two: 512
    window, filters = _constants(length, fft)
    spectrum = np.fft.rfft(emphasised * window, fft)
    power = spectrum.real**2 + spectrum.imag**2  # float32, as Kaldi computes it
    energies: np.ndarray = np.log(np.maximum(power @ filters, np.float32(FLOOR)))
    return energies
