"""Audio I/O: decoding uploads to the engines' sample format, and encoding audio (PyAV, in-process)."""

from voxhost.audio.decode import SAMPLE_RATE, decode_audio, probe_seconds
from voxhost.audio.encode import encode_audio

__all__ = ["SAMPLE_RATE", "decode_audio", "encode_audio", "probe_seconds"]
