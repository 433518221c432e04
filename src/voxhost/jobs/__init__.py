"""Transcription jobs (`/v1/jobs`): a recording submitted, kept on disk, transcribed in the batch lane,
resumed after a restart from its last completed call; its result, events and webhook when it ends.

store.py (SQLite and files under --data-dir), calls.py (a job's completed calls, replayed on resume),
runner.py (queue, running, cancel, retention, disk limit), webhooks.py (signed deliveries).
"""
