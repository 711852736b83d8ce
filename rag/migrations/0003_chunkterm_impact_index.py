from django.db import migrations


class Migration(migrations.Migration):
    """Postings ordered by tf / length within (company, term), so the BM25 leg reads a bounded,
    best-first slice of a common term's postings instead of all of them."""

    dependencies = [("rag", "0002_embedding_storage_plain")]

    operations = [
        migrations.RemoveIndex(model_name="chunkterm", name="chunkterm_company_term"),
        migrations.RunSQL(
            sql="CREATE INDEX chunkterm_company_term_impact ON rag_chunkterm "
                "(company_id, term, ((tf::float4 / greatest(dl, 1))) DESC) INCLUDE (chunk_id, tf, dl)",
            reverse_sql="DROP INDEX chunkterm_company_term_impact",
        ),
    ]
