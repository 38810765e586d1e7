"""Request checks that hold for every page, before any view runs."""

from __future__ import annotations

from django.http import HttpResponseBadRequest


class RejectNulCharacters:
    """A NUL character in a query parameter or form field is refused with 400 and a message: no text a
    person types holds one, PostgreSQL cannot store one, and a view should never meet one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for values in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
            for key, items in values.lists():
                if "\x00" in key or any("\x00" in item for item in items):
                    return HttpResponseBadRequest(
                        "A form field or query parameter holds a NUL character; remove it and try again.",
                        content_type="text/plain; charset=utf-8",
                    )
        return self.get_response(request)
