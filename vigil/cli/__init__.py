"""`vigil ...`: parse the arguments, build the settings, hand off to one command.

`main` is the console script. The parser is in `vigil.cli.parser`, the command table in
`vigil.cli.commands`; each command is a small function that calls the library.
"""

from vigil.cli.main import main

__all__ = ["main"]
