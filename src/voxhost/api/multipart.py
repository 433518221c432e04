"""Read a multipart/form-data request body into memory, enforcing the upload limit while it streams.

Starlette's form parser spools files over 1 MiB to temporary files and only sees the size after reading
everything; voxhost keeps uploads in memory (they are decoded straight to numpy) and answers 413 as soon
as a body passes the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from voxhost.errors import BadRequest, PayloadTooLarge
from voxhost.manager.limits import FORM_OVERHEAD

MAX_PARTS = 64
MAX_FIELD_BYTES = 64 * 1024
# Fields that carry audio as data URLs (known speakers' voice samples): larger, still bounded, and
# counted against the upload limit with the file.
AUDIO_FIELDS = frozenset({"known_speaker_references", "known_speaker_references[]"})
MAX_AUDIO_FIELD_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def get_all(self, *names: str) -> list[str]:
        return [v for name in names for v in self.fields.get(name, [])]


class _Collector:
    """python-multipart callbacks that gather parts into a Form."""

    def __init__(self, form: Form) -> None:
        self.form = form
        self.parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._data = bytearray()
        self._name = ""
        self._filename: str | None = None
        self._content_type = ""

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise BadRequest(f"the form has more than {MAX_PARTS} parts")
        self._headers = {}
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise BadRequest("a form part has no Content-Disposition name")
        self._name = options[b"name"].decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._filename = None if filename is None else filename.decode("utf-8", "replace")
        self._content_type = self._headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]
        if self._filename is None:
            limit = MAX_AUDIO_FIELD_BYTES if self._name in AUDIO_FIELDS else MAX_FIELD_BYTES
            if len(self._data) > limit:
                raise BadRequest(f"the form field {self._name!r} is longer than {limit} bytes")

    def on_part_end(self) -> None:
        if self._filename is not None:
            self.form.files[self._name] = UploadedFile(self._filename, self._content_type, bytes(self._data))
        else:
            text = self._data.decode("utf-8", "replace")
            self.form.fields.setdefault(self._name, []).append(text)
        self._data = bytearray()


async def read_form(request: Request, max_bytes: int) -> Form:
    """Parse the request's multipart body; BadRequest if it is not one, PayloadTooLarge past the limit."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise BadRequest("the request body must be multipart/form-data with the audio in a 'file' part")
    limit = max_bytes + FORM_OVERHEAD
    too_large = PayloadTooLarge(f"the upload is larger than the limit of {max_bytes / 2**20:g} MiB")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    form = Form()
    collector = _Collector(form)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field",
            "on_header_value", "on_header_end", "on_headers_finished",
        )
    }  # fmt: skip
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except (BadRequest, PayloadTooLarge):
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise BadRequest(f"malformed multipart body: {exc}") from None
    for upload in form.files.values():
        if len(upload.data) > max_bytes:
            raise too_large
    return form
