"""The schema of a desired-state file, derived from the value types of ``core.model``.

Why a module of its own, built on first use: the value types are plain dataclasses that every
pass handles, and pydantic, which validates them, costs more to import than the rest of a
no-op pass; a pass whose desired state comes from the validated-state cache
(``desired.Cache``) never validates, so it never imports pydantic. Why derived: one
definition of each type. Each dataclass becomes a closed, frozen pydantic model of the same
name and fields (so errors and ``reconcile schema`` name the keys a user writes), with every
``str``, ``bool`` and ``float`` strict (``enabled: yes`` is an error, not a string), the
constraints a field's ``metadata`` holds (``gt``, ``min_length``), unions of several types
tried left to right, and the type's own ``__post_init__`` rules run on every object.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin, get_type_hints

from reconciler.core import model

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError


def keys(cls: type) -> list[str]:
    """The keys a user may write for ``cls``, in declaration order (for "did you mean")."""
    return [f.name for f in model.written_fields(cls)]


@dataclass(frozen=True)
class Schema:
    """The models derived from the value types, and pydantic's error type."""

    models: Mapping[type, type[BaseModel]]
    error: type[ValidationError]

    def validate(self, data: Any) -> model.DesiredFile:
        """One desired file's plain data as value types; raises ``self.error``."""
        document: model.DesiredFile = to_core(self.models[model.DesiredFile].model_validate(data))
        return document


def to_core(value: Any) -> Any:
    """A validated model as its value type, recursively; the fields a file leaves out get
    the type's own defaults (so a ``ToolPolicy`` knows which keys were written)."""
    core = getattr(type(value), "__core_type__", None)
    if core is not None:
        return core(**{k: to_core(getattr(value, k)) for k in value.model_fields_set})
    if isinstance(value, tuple):
        return tuple(to_core(v) for v in value)
    if isinstance(value, dict):
        return {k: to_core(v) for k, v in value.items()}
    return value


@functools.cache
def schema() -> Schema:
    """The schema, built once per process on first use."""
    import pydantic  # heavy: only a pass that validates a file pays for it

    built: dict[type, type[BaseModel]] = {}
    closed = pydantic.ConfigDict(extra="forbid", frozen=True)

    def strict(tp: Any) -> Any:
        if tp in (str, bool, float):
            return Annotated[tp, pydantic.Strict()]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return model_of(tp)
        origin, args = get_origin(tp), get_args(tp)
        if origin is tuple:
            return tuple[strict(args[0]), ...]  # type: ignore[misc]
        if origin is dict:
            return dict[strict(args[0]), strict(args[1])]  # type: ignore[misc]
        if origin in (Union, types.UnionType):
            union: Any = Union[tuple(strict(a) for a in args)]  # noqa: UP007
            if len([a for a in args if a is not type(None)]) > 1:
                return Annotated[union, pydantic.Field(union_mode="left_to_right")]
            return union
        return tp  # Literal, an enum, None

    def model_of(cls: type) -> type[BaseModel]:
        if cls in built:
            return built[cls]
        hints = get_type_hints(cls, vars(model))
        fields: dict[str, Any] = {}
        for f in model.written_fields(cls):
            extra = dict(f.metadata)
            if f.default is not dataclasses.MISSING:
                extra["default"] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                extra["default_factory"] = f.default_factory
            fields[f.name] = (strict(hints[f.name]), pydantic.Field(**extra))

        def check(self: BaseModel) -> BaseModel:
            to_core(self)  # the type's own rules (``__post_init__``): ValueError at this object
            return self

        # Only a type with rules of its own gets the check: a validator renames the model's
        # tag in error locations, which the union of a placement relies on.
        validators: dict[str, Any] = {}
        if hasattr(cls, "__post_init__"):
            validators["check"] = pydantic.model_validator(mode="after")(check)
        derived: type[BaseModel] = pydantic.create_model(
            cls.__name__,
            __config__=closed,
            __doc__=cls.__doc__,
            __validators__=validators,
            **fields,
        )
        setattr(derived, "__core_type__", cls)  # noqa: B010 (read back by ``to_core``)
        built[cls] = derived
        return derived

    model_of(model.DesiredFile)
    return Schema(built, pydantic.ValidationError)


def json_schema(kinds: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON Schema of one desired-state file, for editors and ``reconcile schema``.

    ``kinds``: the target kinds the families declare, listed as the enum of ``kind``.
    """
    found = schema().models[model.DesiredFile].model_json_schema()
    if kinds:
        found["$defs"]["TargetSpec"]["properties"]["kind"]["enum"] = list(kinds)
    found["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    found["title"] = "mcp-reconciler desired state"
    return found
