"""``--help`` explains every option of every command."""
import click

from mepipe.cli.main import cli


def _options_without_help(command: click.Command, path: str) -> list[str]:
    if isinstance(command, click.Group):
        return [o for name, sub in command.commands.items() for o in _options_without_help(sub, f"{path} {name}")]
    return [f"{path} {param.opts[0]}" for param in command.params
            if isinstance(param, click.Option) and not (param.help or "").strip()]


def test_every_option_of_every_command_has_help():
    assert _options_without_help(cli, "mepipe") == []
