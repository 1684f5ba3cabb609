"""``python -m shopstream`` — the same CLI as the ``shopstream`` script."""

from shopstream.cli.app import main

main()
