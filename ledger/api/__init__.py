"""HTTP-facing building blocks: rate limiting, IP allowlists. Framework-free."""
