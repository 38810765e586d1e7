# One name per idea: the per-fractal claim row (was FractalOperation), kept with its rows.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('archives', '0004_fencing'),
        ('fractals', '0001_initial'),
    ]

    operations = [
        migrations.RenameModel('FractalOperation', 'FractalClaim'),
        migrations.AlterField(
            model_name='fractalclaim',
            name='fractal',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='claim', to='fractals.fractal'),
        ),
    ]
