"""The two operator roles of the admin console, as groups staff users can be put in."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWERS = "Operators (view only)"
RUNNERS = "Operators (render, retry, cancel)"
VIEW = ["view_videojob", "view_segment", "view_referenceimage"]


def create_groups(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist before using them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(Permission.objects.filter(content_type__app_label="jobs", codename__in=VIEW))
    operate = list(Permission.objects.filter(content_type__app_label="jobs", codename="operate_videojob"))
    viewers, _ = Group.objects.get_or_create(name=VIEWERS)
    viewers.permissions.set(view)
    runners, _ = Group.objects.get_or_create(name=RUNNERS)
    runners.permissions.set(view + operate)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[VIEWERS, RUNNERS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_operator_permission"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
