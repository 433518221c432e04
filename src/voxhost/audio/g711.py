"""G.711 telephone audio: mu-law (PCMU) and A-law (PCMA) bytes to and from 16-bit linear PCM.

One byte a sample at 8 kHz, as telephony and OpenAI's Realtime API (`audio/pcmu`, `audio/pcma`) send it.
Decoding is a lookup in a 256-entry table built once from ITU-T G.711's expansion rules; encoding (for
tests and tools) is the standard segment search, vectorized over the whole array.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Codec = Literal["pcmu", "pcma"]
RATE = 8000  # G.711's sample rate
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _ulaw_table() -> np.ndarray:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + _ULAW_BIAS) << exponent
    linear = magnitude - _ULAW_BIAS
    return np.where(code & 0x80, -linear, linear).astype(np.int16)


def _alaw_table() -> np.ndarray:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    shifted = ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    linear = np.where(exponent == 0, (mantissa << 4) + 8, shifted)
    return np.where(code & 0x80, linear, -linear).astype(np.int16)


_TABLES: dict[str, np.ndarray] = {"pcmu": _ulaw_table(), "pcma": _alaw_table()}


def decode(data: bytes, codec: Codec) -> np.ndarray:
    """G.711 bytes as int16 linear samples (one per byte)."""
    return _TABLES[codec][np.frombuffer(data, dtype=np.uint8)]


def encode(samples: np.ndarray, codec: Codec) -> bytes:
    """int16 linear samples as G.711 bytes."""
    x = np.asarray(samples, dtype=np.int32)
    negative = x < 0
    magnitude = np.minimum(np.abs(x), 32767)
    if codec == "pcmu":
        biased = np.minimum(magnitude, _ULAW_CLIP) + _ULAW_BIAS  # 132 .. 32767: exponent 0 .. 7
        exponent = np.floor(np.log2(biased)).astype(np.int32) - 7
        mantissa = (biased >> (exponent + 3)) & 0x0F
        code = ~((negative.astype(np.int32) << 7) | (exponent << 4) | mantissa) & 0xFF
    else:
        exponent = np.where(
            magnitude < 256, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 7
        )
        mantissa = np.where(exponent == 0, magnitude >> 4, magnitude >> (exponent + 3)) & 0x0F
        code = (((~negative).astype(np.int32) << 7) | (exponent << 4) | mantissa) ^ 0x55
    return bytes(code.astype(np.uint8).tobytes())
