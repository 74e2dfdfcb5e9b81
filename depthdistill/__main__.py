"""`python -m depthdistill` is the `depthdistill` command."""

from depthdistill.cli import main

# Guarded: worker processes started with "spawn" import this module as __mp_main__ and must not
# run the CLI again.
if __name__ == "__main__":
    main()
