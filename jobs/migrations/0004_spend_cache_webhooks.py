"""Spend control: the spend ledger, the render cache fields, per-job cache opt-out and planning
notices, and the webhook deliveries seen (for replay protection)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0003_operator_groups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='segment',
            name='bypass_cache',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='segment',
            name='cache_key',
            field=models.CharField(blank=True, db_index=True, max_length=64),
        ),
        migrations.AddField(
            model_name='segment',
            name='cached_from',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='jobs.segment'),
        ),
        migrations.AddField(
            model_name='videojob',
            name='notices',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='videojob',
            name='use_cache',
            field=models.BooleanField(default=True, help_text='Reuse an identical finished clip of the same owner instead of paying again'),
        ),
        migrations.CreateModel(
            name='WebhookEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event_id', models.CharField(max_length=200, unique=True)),
                ('provider', models.CharField(default='sora', max_length=40)),
                ('type', models.CharField(max_length=80)),
                ('video_id', models.CharField(blank=True, db_index=True, max_length=200)),
                ('outcome', models.CharField(max_length=40)),
                ('received_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('segment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='webhook_events', to='jobs.segment')),
            ],
            options={
                'ordering': ['-received_at'],
            },
        ),
        migrations.CreateModel(
            name='SpendEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('segment_index', models.PositiveIntegerField(blank=True, null=True)),
                ('kind', models.CharField(choices=[('render', 'Render'), ('wasted', 'Lost render (billed but unusable)'), ('cache_saving', 'Saved by the render cache')], max_length=20)),
                ('amount_usd', models.DecimalField(decimal_places=4, max_digits=10)),
                ('billed_seconds', models.FloatField(default=0.0)),
                ('provider', models.CharField(max_length=40)),
                ('model', models.CharField(blank=True, max_length=80)),
                ('size', models.CharField(blank=True, max_length=20)),
                ('provider_task_id', models.CharField(blank=True, max_length=200)),
                ('note', models.CharField(blank=True, max_length=300)),
                ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('job', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='spend_entries', to='jobs.videojob')),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='spend_entries', to=settings.AUTH_USER_MODEL)),
                ('segment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='spend_entries', to='jobs.segment')),
            ],
            options={
                'verbose_name_plural': 'spend entries',
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['owner', 'kind', 'created_at'], name='jobs_spende_owner_i_3acb49_idx')],
                'constraints': [models.CheckConstraint(condition=models.Q(('amount_usd__gte', 0)), name='spend_amount_not_negative')],
            },
        ),
    ]
