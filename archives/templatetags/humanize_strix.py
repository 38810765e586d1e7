from django import template

register = template.Library()


@register.filter
def thousands(value):
    """12345678 → 12,345,678 (without django.contrib.humanize's locale machinery)."""
    if isinstance(value, int):
        return f"{value:,}"
    return value
