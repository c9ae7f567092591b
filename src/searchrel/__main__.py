"""`python -m searchrel ...` is the `searchrel` command."""

from searchrel.cli import main

main()
