#!/usr/bin/env python
"""Django's command-line utility for Strix Data Protection."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")
    from django.core.management import execute_from_command_line

    from strix.envconfig import require_valid_settings

    require_valid_settings()

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
