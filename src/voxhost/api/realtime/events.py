"""The Realtime API's events, as voxhost's transcription sessions take and send them (both versions).

Every event type of OpenAI's API is here, handled or declined with the reason (what a client that sends
a declined event is told), and so is every field of the events sent that voxhost leaves out.
`tests/api/test_realtime_protocol.py` holds these tables against the installed openai SDK, so an event
that a new API version adds fails a test until it is placed here.
"""

from __future__ import annotations

ITEM = "conversation.item.input_audio_transcription"

# client -> server: what a transcription session does with each event
CLIENT_EVENTS: tuple[str, ...] = (
    "session.update",  # GA
    "transcription_session.update",  # beta
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
_NO_CONVERSATION = (
    "a transcription session keeps no conversation: each committed turn is transcribed and reported "
    "with its item id, and there are no items to create, read or change"
)
_NO_RESPONSES = "a transcription session has no model responses: it only transcribes the input audio"
_NO_AUDIO_OUT = "a transcription session sends no audio"
DECLINED_CLIENT_EVENTS: dict[str, str] = {
    "conversation.item.create": _NO_CONVERSATION,
    "conversation.item.delete": _NO_CONVERSATION,
    "conversation.item.retrieve": _NO_CONVERSATION,
    "conversation.item.truncate": _NO_CONVERSATION,
    "response.create": _NO_RESPONSES,
    "response.cancel": _NO_RESPONSES,
    "output_audio_buffer.clear": _NO_AUDIO_OUT,
}

# server -> client
SERVER_EVENTS: tuple[str, ...] = (
    "session.created",  # GA
    "session.updated",
    "transcription_session.created",  # beta
    "transcription_session.updated",
    "input_audio_buffer.speech_started",  # server VAD only
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    f"{ITEM}.delta",  # words two partial decodes agree on, while the speaker talks; the rest at the end
    f"{ITEM}.segment",  # GA: each segment of the final transcript (one speaker: voxhost does not diarize)
    f"{ITEM}.completed",
    f"{ITEM}.failed",
    "error",
)
_RESPONSE_EVENTS = (
    "response.created", "response.done", "response.output_item.added", "response.output_item.done",
    "response.content_part.added", "response.content_part.done", "response.output_text.delta",
    "response.output_text.done", "response.output_audio.delta", "response.output_audio.done",
    "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed",
    "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done", "rate_limits.updated",
    # beta's names for the same
    "response.text.delta", "response.text.done", "response.audio.delta", "response.audio.done",
    "response.audio_transcript.delta", "response.audio_transcript.done",
)  # fmt: skip
_CONVERSATION_EVENTS = (
    "conversation.created", "conversation.item.added", "conversation.item.created",
    "conversation.item.done", "conversation.item.deleted", "conversation.item.retrieved",
    "conversation.item.truncated",
)  # fmt: skip
DECLINED_SERVER_EVENTS: dict[str, str] = {
    **dict.fromkeys(_RESPONSE_EVENTS, _NO_RESPONSES),
    **dict.fromkeys(_CONVERSATION_EVENTS, _NO_CONVERSATION),
    "mcp_list_tools.in_progress": "a transcription session calls no tools",
    "mcp_list_tools.completed": "a transcription session calls no tools",
    "mcp_list_tools.failed": "a transcription session calls no tools",
    "output_audio_buffer.started": _NO_AUDIO_OUT,
    "output_audio_buffer.stopped": _NO_AUDIO_OUT,
    "output_audio_buffer.cleared": _NO_AUDIO_OUT,
    "input_audio_buffer.dtmf_event_received": "telephone keypad presses come only from SIP calls",
    "input_audio_buffer.timeout_triggered": "idle_timeout_ms asks for a model response after a silence; "
    "a transcription session has none (the setting is declined)",
}
# fields of the events above that voxhost never fills in
DECLINED_EVENT_FIELDS: dict[str, str] = {
    f"{ITEM}.delta.logprobs": "a delta holds the words two partial decodes agree on, not one decode's "
    "tokens; the completed event carries the log-probabilities of the final decode",
}
