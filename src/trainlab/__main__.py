"""`python -m trainlab` runs the command line."""

from trainlab.cli import entry_point

if __name__ == "__main__":
    entry_point()
