"""`python -m depthdistill` is the `depthdistill` command."""

from depthdistill.cli import main

main()
