"""Command-line flags generated from `Settings`: one definition per field, so a new setting is one edit.

Each field becomes a typer option: its name from `voxhost.settings.flag_name` (the same name the settings
reference in the README shows), its help from the field's description, its default (shown in --help)
from the field's default and its choices from a Literal type. Bool fields are `--x/--no-x` flags, list
fields repeatable flags. Other constraints (ge, le...) are left to Settings, whose errors `voxhost.cli`
reports under the flag's name (they would crowd --help as ranges).

`settings_flags(*fields)` adds such options to a command. The command takes them as `**flags` and
receives only those the user actually gave, so that a flag left out leaves its `VOXHOST_*` environment
variable (or the default) in force.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import typer

from voxhost.settings import Settings, flag_name

F = TypeVar("F", bound=Callable[..., Any])

# Settings fields that `voxhost serve` has no flag for (none today).
NOT_SERVE_FLAGS: frozenset[str] = frozenset()
# The fields `voxhost serve` takes as flags, in the order of Settings (and of its --help).
SERVE_FIELDS: tuple[str, ...] = tuple(f for f in Settings.model_fields if f not in NOT_SERVE_FLAGS)

SHORT_FLAGS = {"models": "-m"}
# The off-switch of a bool flag, where it is not --no-FLAG.
OFF_FLAGS = {"offline": "--online"}


def field_type(field: str) -> Any:
    """The field's type without None (`Path | None` -> Path); Literal and list types as they are."""
    annotation = Settings.model_fields[field].annotation
    if get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = (arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def is_list(field: str) -> bool:
    return get_origin(field_type(field)) is list


def choices(field: str) -> tuple[str, ...] | None:
    """The values a Literal field takes, or None."""
    annotation = field_type(field)
    return tuple(get_args(annotation)) if get_origin(annotation) is Literal else None


def flag_decls(field: str) -> tuple[str, ...]:
    """The option's names, e.g. ("--model", "-m") or ("--wyoming/--no-wyoming",)."""
    name = flag_name(field)
    if field_type(field) is bool:
        name += "/" + OFF_FLAGS.get(field, "--no-" + name.removeprefix("--"))
    return (name, SHORT_FLAGS[field]) if field in SHORT_FLAGS else (name,)


def flag_help(field: str) -> str:
    """The option's help: the field's description, as the settings reference shows it."""
    text = " ".join((Settings.model_fields[field].description or "").split())
    return text + " Repeatable." if is_list(field) else text


def _option(field: str) -> Any:
    info = Settings.model_fields[field]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    shown = extra.get("shown_default")
    # A default that depends on the machine (the cache directory) is shown as described, not as computed.
    default = None if shown is not None else info.get_default(call_default_factory=True)
    return typer.Option(
        default,
        *flag_decls(field),
        help=flag_help(field),
        show_default=str(shown) if shown is not None else True,
    )


def _parameter(field: str) -> inspect.Parameter:
    return inspect.Parameter(
        field, inspect.Parameter.KEYWORD_ONLY, default=_option(field), annotation=field_type(field)
    )


def given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave this option (on the command line), rather than it taking its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def settings_flags(*fields: str) -> Callable[[F], F]:
    """Add the flags of these Settings fields to a typer command, whose `**flags` receives those given."""
    unknown = set(fields) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"not settings: {sorted(unknown)}")

    def decorate(func: F) -> F:
        own = inspect.signature(func, eval_str=True)
        params = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        clash = {p.name for p in params} & set(fields)
        if clash:
            raise ValueError(f"{func.__name__} already has parameters {sorted(clash)}")
        contexts = [p.name for p in params if p.annotation is typer.Context]
        context = contexts[0] if contexts else "_settings_flags_context"
        if not contexts:
            params.append(
                inspect.Parameter(context, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
            )
        params.extend(_parameter(field) for field in fields)

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            ctx: typer.Context = kwargs[context] if contexts else kwargs.pop(context)
            for field in fields:
                value = kwargs.pop(field)
                if given(ctx, field):
                    kwargs[field] = value
            return func(**kwargs)

        command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        return typing.cast(F, command)

    return decorate
