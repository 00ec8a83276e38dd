"""shipline: from git push to production on servers you own."""

__version__ = "0.1.0"
