"""Storage settings of the conversation index table.

Every sync rewrites the rows of active conversations. Vacuuming after ~2% of the rows changed
(instead of PostgreSQL's 20%) keeps the visibility map current, so the list's index-only scans
(page ids, counts) rarely have to visit the table.
"""

from django.db import migrations

TABLE = "analytics_conversationsummary"


class Migration(migrations.Migration):
    dependencies = [("analytics", "0001_initial")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE {TABLE} SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)",
            reverse_sql=f"ALTER TABLE {TABLE} RESET (autovacuum_vacuum_scale_factor, "
            "autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor)",
        ),
    ]
