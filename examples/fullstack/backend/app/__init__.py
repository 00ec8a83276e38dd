"""Example backend for shipline: a tiny JSON API in front of PostgreSQL."""
