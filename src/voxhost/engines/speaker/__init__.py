"""Speaker models without PyTorch: reading PyTorch checkpoints safely (`checkpoint`), building their
networks as ONNX graphs (`campplus`), log-mel features (`features`) and clustering (`cluster`). Shared by
the diarization engine (`engines/diarizer.py`); holds no engine class itself."""
