"""A real Django project in one file, its WSGI handler wrapped in the agent.

``DEBUG_PROPAGATE_EXCEPTIONS`` makes Django re-raise a view's error instead of answering its
own 500 page, so the middleware around the WSGI handler sees it (docs/frameworks.md).
"""

from __future__ import annotations

import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    DEBUG_PROPAGATE_EXCEPTIONS=True,
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    SECRET_KEY="only-for-the-tests",
    INSTALLED_APPS=[],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402 - after settings.configure
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from debugbroker import DebuggedApplication  # noqa: E402
from tests.e2e.apps.leaky import Login  # noqa: E402

ORDERS = {1: [3, 4, 5], 2: []}


def average(items: list[int]) -> float:
    return sum(items) / len(items)


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(os.getpid()), content_type="text/plain")


def order(request: HttpRequest, order_id: int) -> HttpResponse:
    customer = request.GET.get("customer", "ada")
    items = ORDERS[order_id]
    return HttpResponse(f"{customer}: {average(items)}", content_type="text/plain")


def leak(request: HttpRequest) -> HttpResponse:
    """Holds the request's secrets the ways an app does, then fails with one in its message."""
    form = request.POST
    query = request.GET
    headers = request.headers
    cookies = request.COOKIES  # noqa: F841
    login = Login(user="ada", password=form["password"])  # noqa: F841
    raw = {b"password": form["password"].encode(), b"user": b"ada"}  # noqa: F841
    pairs = [("X-Api-Key", headers["X-Api-Key"]), ("Accept", "text/plain")]  # noqa: F841
    dsn = os.environ.get("DATABASE_URL", "")  # noqa: F841
    raise PermissionError(f"refused token={query['api_token']}")


def checkout(request: HttpRequest) -> HttpResponse:
    amount = request.POST.get("amount", "0")
    receipt = request.FILES.get("receipt")
    return HttpResponse(f"{receipt}: {1 / int(amount)}", content_type="text/plain")


urlpatterns = [
    path("", index),
    path("orders/<int:order_id>", order),
    path("leak", leak),
    path("checkout", checkout),
]

application = DebuggedApplication(get_wsgi_application(), app_name="django-test")
