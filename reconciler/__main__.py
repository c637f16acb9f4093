"""`python -m reconciler` runs the same command line as the `reconcile` script."""

from reconciler.cli.main import main

if __name__ == "__main__":
    main()
