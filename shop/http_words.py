# ruff: noqa: E501  (werkzeug's sentences, kept whole so they match)
"""Werkzeug's own words for the HTTP errors it raises (name, description), marked for
the catalog: ``shop.errors`` translates them when it answers (a test checks that these
are still werkzeug's words)."""

from __future__ import annotations

from shop.i18n import N_

HTTP_WORDS: dict[int, tuple[str, str]] = {
    400: (
        N_("Bad Request"),
        N_("The browser (or proxy) sent a request that this server could not understand."),
    ),
    401: (
        N_("Unauthorized"),
        N_(
            "The server could not verify that you are authorized to access the URL requested. You either supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials required."
        ),
    ),
    403: (
        N_("Forbidden"),
        N_(
            "You don't have the permission to access the requested resource. It is either read-protected or not readable by the server."
        ),
    ),
    404: (
        N_("Not Found"),
        N_(
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
        ),
    ),
    405: (N_("Method Not Allowed"), N_("The method is not allowed for the requested URL.")),
    406: (
        N_("Not Acceptable"),
        N_(
            "The resource identified by the request is only capable of generating response entities which have content characteristics not acceptable according to the accept headers sent in the request."
        ),
    ),
    409: (
        N_("Conflict"),
        N_(
            "A conflict happened while processing the request. The resource might have been modified while the request was being processed."
        ),
    ),
    413: (
        N_("Request Entity Too Large"),
        N_("The data value transmitted exceeds the capacity limit."),
    ),
    415: (
        N_("Unsupported Media Type"),
        N_("The server does not support the media type transmitted in the request."),
    ),
    422: (
        N_("Unprocessable Entity"),
        N_("The request was well-formed but was unable to be followed due to semantic errors."),
    ),
    429: (
        N_("Too Many Requests"),
        N_("This user has exceeded an allotted request count. Try again later."),
    ),
}
