"""Both operator roles may see the spend ledger and the webhook deliveries (never change them: their
admins are read-only for everyone)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ["Operators (view only)", "Operators (render, retry, cancel)"]
VIEW = ["view_spendentry", "view_webhookevent"]


def grant_view(apps, schema_editor):
    # Permissions are normally created after migrate; make sure the new models' exist before using them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label="jobs", codename__in=VIEW))
    # The groups 0003 made (one an administrator has since deleted is not brought back).
    for group in Group.objects.filter(name__in=GROUPS):
        group.permissions.add(*view)


def revoke_view(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label="jobs", codename__in=VIEW))
    for group in Group.objects.filter(name__in=GROUPS):
        group.permissions.remove(*view)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_spend_cache_webhooks"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_view, revoke_view)]
