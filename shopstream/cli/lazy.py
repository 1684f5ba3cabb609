"""Sub-commands imported when they run, not when ``shopstream`` starts.

The command modules pull in confluent-kafka, SQLAlchemy, Alembic, the consumers and
more; importing all of them made ``shopstream --help`` and one-event commands spend
about a second before doing anything. The root group lists each sub-command from a
:class:`Lazy` entry (its name, where it lives, the line ``shopstream --help`` shows)
and imports the module only when that sub-command is invoked.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A sub-command of the root group, imported on first use."""

    name: str
    target: str
    """``module:attribute``: a :class:`typer.Typer` (a group) or a command function."""
    help: str
    """The line ``shopstream --help`` lists: the first paragraph of the real help."""

    def load(self, rich_markup_mode: Any) -> click.Command:
        """The real click command, built by Typer exactly as ``add_typer``/``command``
        on the root app would build it."""
        module_name, _, attribute = self.target.partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        holder = typer.Typer(rich_markup_mode=rich_markup_mode)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=self.name)
        else:
            holder.command(name=self.name)(target)
        return typer.main.get_group(holder).commands[self.name]


class LazyCommand(click.Command):
    """Stands for a sub-command in the root's help; parsing its arguments loads it.

    :meth:`click.Group.invoke` runs ``sub_ctx.command`` of the context this returns,
    which is the real command.
    """

    def __init__(self, group: LazyGroup, entry: Lazy) -> None:
        super().__init__(entry.name, help=entry.help)
        self._group = group

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        real = self._group.load(self.name or "")
        return real.make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    """A Typer group whose sub-commands (``lazy``) are imported on first use."""

    lazy: ClassVar[Sequence[Lazy]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._entries = {entry.name: entry for entry in self.lazy}
        for entry in self.lazy:
            self.commands.setdefault(entry.name, LazyCommand(self, entry))

    def load(self, name: str) -> click.Command:
        """The real command ``name`` (imported once, then kept in place of its stand-in)."""
        command = self.commands[name]
        if isinstance(command, LazyCommand):
            command = self._entries[name].load(self.rich_markup_mode)
            self.commands[name] = command
        return command
