from tests.vulndb.conftest import postgres_url, store  # noqa: F401  (same parametrized store fixture)
