"""HTTP routes of the demo: a home page, the Django admin, the GraphQL playground and the
metrics.

The playground is routed at ``graphql/``, the path of the WebSocket consumer in ``asgi.py``,
so the page connects to its own URL. ``metrics/`` is for staff, or a scraper with
``GQLCHANNELS_METRICS_TOKEN`` as its bearer token.
"""

from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView

from gqlchannels.metrics import metrics_view
from gqlchannels.playground.views import playground_view

urlpatterns = [
    path("", TemplateView.as_view(template_name="chat/home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("graphql/", playground_view, name="playground"),
    path("metrics/", metrics_view, name="metrics"),
]
