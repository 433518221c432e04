"""The features CAM++ was trained on: 80-bin Kaldi log-mel filterbanks (25 ms frames every 10 ms, no
dither), computed by kaldi-native-fbank, mean-normalised per clip by the caller."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
FRAME_SHIFT = 0.010  # seconds
FRAME_LENGTH = 0.025


def fbank(audio: np.ndarray) -> np.ndarray:
    """(frames, 80) float32 log-mel energies of float32 16 kHz mono audio (no frame for audio shorter
    than 25 ms)."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.dither = 0.0
    options.frame_opts.snip_edges = True
    options.mel_opts.num_bins = 80
    extractor = knf.OnlineFbank(options)
    # samples in [-1, 1], as 3D-Speaker's training read them (torchaudio); the mean normalisation makes
    # the scale matter only against the log floor
    extractor.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(audio, dtype=np.float32))
    extractor.input_finished()
    frames = extractor.num_frames_ready
    if frames == 0:
        return np.zeros((0, 80), dtype=np.float32)
    return np.stack([extractor.get_frame(i) for i in range(frames)]).astype(np.float32)
