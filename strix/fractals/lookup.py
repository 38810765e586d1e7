"""Finding a fractal by what an operator types: its name or its id."""

import uuid

from strix.errors import OperatorError
from strix.fractals.models import Fractal


class FractalNotFound(OperatorError):
    pass


def find_fractal(name_or_id: str) -> Fractal:
    try:
        return Fractal.objects.get(pk=uuid.UUID(name_or_id))
    except (ValueError, Fractal.DoesNotExist):
        pass
    try:
        if "\x00" in name_or_id:  # PostgreSQL holds no NUL: no fractal has such a name
            raise Fractal.DoesNotExist
        return Fractal.objects.get(name=name_or_id)
    except Fractal.DoesNotExist:
        raise FractalNotFound(
            f"no fractal is named or has the id {name_or_id!r}; list them in the admin or with "
            "`manage.py archives list`."
        ) from None
