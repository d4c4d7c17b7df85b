import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("chatbots", "0007_shop_default"),
    ]

    operations = [
        migrations.AlterField(
            model_name="aiendpoint",
            name="shop",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ai_endpoints",
                to="accounts.shop",
            ),
        ),
        migrations.AlterField(
            model_name="chatbot",
            name="shop",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="chatbots",
                to="accounts.shop",
            ),
        ),
        migrations.AlterField(
            model_name="prompttemplate",
            name="shop",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="prompt_templates",
                to="accounts.shop",
            ),
        ),
    ]
