"""A Django project answering its own 500s (no propagation, no middleware): install_django.

It also reports logged errors (``install_logging``): ``/logged/<id>`` logs a missing order and
re-raises, and Django logs the error again (``django.request``) after ``got_request_exception``.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    DEBUG_PROPAGATE_EXCEPTIONS=False,
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="only-for-the-tests",
    INSTALLED_APPS=[],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after settings.configure
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

import debugbroker  # noqa: E402

ORDERS = {1: [3, 4, 5], 2: []}
log = logging.getLogger("shop.orders")


def average(items: list[int]) -> float:
    return sum(items) / len(items)


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(os.getpid()), content_type="text/plain")


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    customer = request.GET.get("customer", "ada")
    items = ORDERS[order_id]
    return HttpResponse(f"{customer}: {average(items)}", content_type="text/plain")


def logged(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        items = ORDERS[order_id]
    except KeyError:
        log.exception("order %s is missing", order_id)
        raise
    return HttpResponse(str(items), content_type="text/plain")


urlpatterns = [
    path("", index),
    path("orders/<int:order_id>", order),
    path("logged/<int:order_id>", logged),
]

debugbroker.install_django()
debugbroker.install_logging()
application = get_wsgi_application()
