"""Every SQL statement and Redis command of the user-service lives in this package."""
