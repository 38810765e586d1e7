from django.apps import AppConfig


class FractalsConfig(AppConfig):
    name = "strix.fractals"
    label = "fractals"
    verbose_name = "Fractals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from strix import checks  # noqa: F401  (registers the system checks)
