"""The write path: validate each event (`validation`), hand the valid ones to the
appender (`ingestor`), which group-commits them to one chain (`appender`)."""
