"""The HTTP API (FastAPI): routers, schemas, authentication and the error mapping."""
