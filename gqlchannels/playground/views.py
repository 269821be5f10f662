"""The playground's one view: the page on GET of the GraphQL route, and its files.

The page asks for its script and stylesheet at its own URL (``?asset=playground.js``), so
one route serves everything, under plain ``daphne`` or ``runserver``, without
``collectstatic`` or a static-files server; the files are read from the package's
``static/gqlchannels/playground/``, where ``collectstatic`` finds them too.
"""

from __future__ import annotations

from pathlib import Path

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .access import playground_allowed
from .headers import secure

ASSET_DIRECTORY = Path(__file__).resolve().parent.parent / "static" / "gqlchannels" / "playground"

#: The files the page may ask for, and their content types: nothing else is ever read.
ASSETS: dict[str, str] = {
    "playground.js": "text/javascript; charset=utf-8",
    "protocol.js": "text/javascript; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
}

TEMPLATE = "gqlchannels/playground.html"


@require_safe
@never_cache
def playground_view(request: HttpRequest) -> HttpResponseBase:
    """The playground page, or with ``?asset=NAME`` one of its files; 404 for whoever may not
    see it (``gqlchannels.playground.access``), so that its existence is not given away.

    Never cached: who may see it depends on the session.
    """
    if not playground_allowed(request):
        raise Http404("No playground here.")
    asset = request.GET.get("asset")
    if asset is None:
        response: HttpResponseBase = render(request, TEMPLATE, {"page_path": request.path})
    else:
        response = _asset(asset)
    return secure(response, request)


def _asset(name: str) -> HttpResponse:
    content_type = ASSETS.get(name)
    if content_type is None:
        raise Http404("No such playground file.")
    return HttpResponse((ASSET_DIRECTORY / name).read_bytes(), content_type=content_type)
