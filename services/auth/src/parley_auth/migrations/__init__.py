"""The auth schema's migrations (the `NNNN_name.sql` files beside this one)."""

from parley_service.db import Migrations

MIGRATIONS = Migrations("auth", "parley_auth.migrations")
