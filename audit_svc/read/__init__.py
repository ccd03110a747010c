"""The read path: the facade the servicers call (`reader`), Query filters and page
tokens (`query`), statistics (`statistics`), the legacy v1 view (`legacy`) and the
live tail (`live_tail`)."""
