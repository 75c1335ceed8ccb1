"""What every check of the conformance kit shares: its error, its name in the message, and skipping checks by name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
C = TypeVar("C", bound=Callable[..., None])


class ContractError(AssertionError):
    """A plugin breaks the alseg contract; the message begins with the failing check's name in brackets."""


class Violation(Exception):
    """A broken contract found inside a check; :func:`contract_check` raises it as a :class:`ContractError`."""


def contract_check(check: Callable[P, None]) -> Callable[P, None]:
    """Makes ``check`` raise each :class:`Violation` as ``ContractError("[<check's name>] <message>")``."""

    @functools.wraps(check)
    def named(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            check(*args, **kwargs)
        except Violation as violation:
            error = ContractError(f"[{check.__name__}] {violation}")
            raise error.with_traceback(violation.__traceback__) from violation.__cause__

    return named


def require(condition: bool, message: str) -> None:
    """Raises a :class:`Violation` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Violation(message)


def raises(action: Callable[[], Any]) -> bool:
    """Returns whether ``action()`` raises an exception."""
    try:
        action()
    except Exception:
        return True
    return False


def select(checks: Sequence[C], skip: Collection[str]) -> list[C]:
    """Returns ``checks`` in order without those named in ``skip``.

    Raises:
        TypeError: ``skip`` is a single string instead of a collection of names.
        ValueError: A name in ``skip`` is not the name of one of ``checks``; the message lists the valid names.
    """
    if isinstance(skip, str):
        raise TypeError(f"skip must be a collection of check names, not the string {skip!r}.")
    names = [check.__name__ for check in checks]
    unknown = sorted(set(skip) - set(names))
    if unknown:
        raise ValueError(
            f"Unknown check name(s) in skip: {', '.join(map(repr, unknown))}. Available: {', '.join(names)}."
        )
    return [check for check in checks if check.__name__ not in skip]
