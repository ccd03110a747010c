"""Operator commands behind `python -m audit_svc`: `migrate`, `verify`, and
`archive`/`restore` (`archive`)."""
