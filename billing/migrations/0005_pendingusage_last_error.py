from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_quota_reservation_released'),
    ]

    operations = [
        migrations.AddField(
            model_name='pendingusage',
            name='last_error',
            field=models.TextField(blank=True, db_default='', default='', help_text='Why recording it failed for a reason a retry cannot fix; the sweep leaves such rows (usage_check reports them).'),
        ),
    ]
