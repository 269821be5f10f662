#!/usr/bin/env python
"""Django's command-line utility for the gqlchannels demo project."""

import os
import sys


def main() -> None:
    """Run a management command against ``demo_project.settings``."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
