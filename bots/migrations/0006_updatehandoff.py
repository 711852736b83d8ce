from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("bots", "0005_telegram_waits_and_migrations"),
    ]

    operations = [
        migrations.CreateModel(
            name="UpdateHandoff",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("update_pk", models.BigIntegerField(help_text="The TelegramUpdate's id.")),
                ("bot_id", models.BigIntegerField(help_text="Its bot (fair-queueing priority is counted per bot).")),
            ],
            options={"db_table": "bots_updatehandoff"},
        ),
    ]
