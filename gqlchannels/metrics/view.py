"""The scrape endpoint: this process's metrics, or every process's in multi-process mode, in
the format the scraper asks for (Prometheus text, or OpenMetrics)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import access, counters


@require_safe
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics, for whoever ``gqlchannels.metrics.access`` lets in; 404 when nothing is
    counted (prometheus-client is not installed, or ``METRICS`` is False).

    Route it in ``urls.py``: ``path("metrics/", metrics_view)``. Never cached.
    """
    if not counters.recorder.enabled:
        raise Http404("gqlchannels counts no metrics here.")
    refused = access.denial(request)
    if refused is not None:
        return refused
    body, content_type = exposition(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


def exposition(accept: str) -> tuple[bytes, str]:
    """The metrics encoded as ``accept`` prefers, and the content type of that encoding.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, every process of the service writes its values to
    files there, and this adds them up (``MultiProcessCollector``): one scrape of any worker
    shows the whole service. Otherwise it is this process's default registry (gqlchannels'
    metrics and prometheus-client's process metrics).
    """
    import prometheus_client
    from prometheus_client import multiprocess
    from prometheus_client.exposition import choose_encoder

    registry = prometheus_client.REGISTRY
    directory = counters.multiprocess_directory()
    if directory:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type
