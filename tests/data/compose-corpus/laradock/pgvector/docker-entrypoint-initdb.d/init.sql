-- Enable the pgvector extension in the default database on first init.
CREATE EXTENSION IF NOT EXISTS vector;
