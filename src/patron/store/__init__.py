"""Storage: schema, migrations and repositories, the only place that speaks SQL."""
