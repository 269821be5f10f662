"""The playground: a page, served on GET of the GraphQL route, to run operations by hand.

Route it at the same path as the WebSocket consumer, so that the page connects to its own
URL: ``path("graphql/", playground_view)`` from ``gqlchannels.playground.views`` in
``urls.py``. ``access`` decides who sees it (``GQLCHANNELS['PLAYGROUND']``), ``headers`` the
security headers it is sent with; its script, stylesheet and template are package files.
"""
