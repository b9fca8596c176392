"""Django-Q2's migration 0019, under its own name so databases at 0018 and 0019 both migrate.

It changed only options and verbose names, which 0001_squashed_0018 already states, so
it has nothing to do here.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("django_q", "0001_squashed_0018")]

    operations = []
