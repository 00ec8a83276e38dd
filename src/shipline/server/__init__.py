"""`shipline serve`: webhooks, `git push`, a persistent run queue and a dashboard in front of `shipline deploy`.

The server never imports the deploy core: each run is a `shipline deploy` subprocess in the server's own checkout of
the app, so a crash of either side cannot corrupt the other, and a run is cancelled exactly like Ctrl-C.
"""
