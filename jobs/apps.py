from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"
    verbose_name = "Video jobs"

    def ready(self) -> None:
        # In every process (web, workers, manage.py), so a token revoked anywhere is forgotten everywhere.
        from jobs.api.token_cache import connect_signals

        connect_signals()
