"""PostgreSQL storage (asyncpg): migrations, charger registry, transactions, meter samples, message log."""
