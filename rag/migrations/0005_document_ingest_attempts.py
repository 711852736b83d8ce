from django.db import migrations, models


class Migration(migrations.Migration):
    """Attempts and the start of the current run on the document row (the stuck-document sweep reads
    them), and the failure's stable code."""

    dependencies = [("rag", "0004_collections_source_url")]

    operations = [
        migrations.AddField(
            model_name="document", name="error_code",
            field=models.CharField(blank=True, max_length=64,
                                   help_text="Stable code of the last failure (document_too_large_extracted, ...)."),
        ),
        migrations.AddField(
            model_name="document", name="ingest_attempts",
            field=models.PositiveSmallIntegerField(
                default=0, help_text="Ingestion runs since it was last queued; a run that never finished counts too."),
        ),
        migrations.AddField(
            model_name="document", name="processing_started_at",
            field=models.DateTimeField(blank=True, null=True,
                                       help_text="When the current (or last) ingestion run started."),
        ),
    ]
