"""The read path: the facade the servicers call (`reader`), the Query filters written
once (`filters`), their validation and page tokens (`query`), statistics
(`statistics`), the legacy v1 view (`legacy`) and the live tail (`live_tail`)."""
