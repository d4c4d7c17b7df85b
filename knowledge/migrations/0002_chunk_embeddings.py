import django.contrib.postgres.fields
from django.db import migrations, models

# The dimension of OpenAI's text-embedding-3-small and ada-002, the usual models: chunks of that
# dimension get an approximate-nearest-neighbour index. Other dimensions are searched exactly
# (a scan of the base's chunks), which is fast at the sizes one shop uploads.
INDEXED_DIMENSION = 1536


def vector_index_create(apps, schema_editor):
    """pgvector and the HNSW index, where the server has the extension; without it vector search
    is skipped at run time (knowledge.retrieval.vector_search_available) and full-text remains."""
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is None:
            return
        cursor.execute("SAVEPOINT knowledge_vector")
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception:
            # Installed on the server but this role may not create it: a DBA can, later.
            cursor.execute("ROLLBACK TO SAVEPOINT knowledge_vector")
            return
        cursor.execute("RELEASE SAVEPOINT knowledge_vector")
        # Serves vector retrieval (knowledge.retrieval._VECTOR_SQL) of 1536-dimension chunks.
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS knowledge_chunk_embedding_hnsw "
            f"ON knowledge_knowledgechunk USING hnsw "
            f"((embedding::vector({INDEXED_DIMENSION})) vector_cosine_ops) "
            f"WHERE cardinality(embedding) = {INDEXED_DIMENSION}"
        )


def vector_index_drop(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS knowledge_chunk_embedding_hnsw")


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgechunk",
            name="embedding",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.FloatField(), blank=True, null=True, size=None
            ),
        ),
        migrations.AddField(
            model_name="knowledgechunk",
            name="embedding_model",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.RunPython(vector_index_create, vector_index_drop),
    ]
