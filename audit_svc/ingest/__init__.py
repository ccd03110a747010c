"""The write path: validate each event (`validation`), hand the valid ones to the
appender (`ingestor`), which group-commits them to one chain (`appender`); a
StreamIngest stream is pipelined under the event budget by `stream`."""
