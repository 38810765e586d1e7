from django.apps import AppConfig


class ArchivesConfig(AppConfig):
    name = "archives"
    verbose_name = "Archives"
    default_auto_field = "django.db.models.BigAutoField"
