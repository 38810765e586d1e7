"""Create the PostgreSQL database the settings name (DATABASE_URL or STRIX_POSTGRES_*), if it is missing.

Used by `make demo` / `make bench`; connects to the server's `postgres` database with the same
credentials, so it creates whatever database the configuration points at, not a fixed name.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strix.settings")


def main() -> int:
    import psycopg2
    from psycopg2 import sql

    from strix.envconfig import require_valid_settings

    require_valid_settings()
    from django.conf import settings

    db = settings.DATABASES["default"]
    try:
        connection = psycopg2.connect(
            dbname="postgres", user=db["USER"], password=db["PASSWORD"], host=db["HOST"], port=db["PORT"] or None
        )
    except psycopg2.Error as e:
        print(f"cannot reach PostgreSQL at {db['HOST']}:{db['PORT']}: {str(e).strip()}", file=sys.stderr)
        return 1
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
        if cursor.fetchone():
            print(f"database {db['NAME']} exists")
        else:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
            print(f"created database {db['NAME']}")
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
